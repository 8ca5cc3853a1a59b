/**
 * BLAKE3 through src/chunking/hash.ts, one-shot per buffer size and streaming in 1 MiB updates
 * (how a whole-file hash is fed), with node:crypto SHA-256 on the same 1 MiB buffer as a
 * same-run reference: a native hash every Node has, so a slow machine shows in both.
 */
import { createHash, randomBytes } from "node:crypto";
import { hashBytes, StreamingHash } from "../../src/chunking/hash.js";
import { KIB, MIB, type MicroTask, type TaskGroup } from "./task.js";

export const BLAKE3_1MIB = "blake3 1 MiB";
export const BLAKE3_STREAMING = "blake3 streaming 1 MiB updates";
export const SHA256_1MIB = "sha256 1 MiB";

const STREAMED_BYTES = 16 * MIB;

/** Sizes from a small file's only chunk to the largest chunk the protocol allows. */
const ONE_SHOT_SIZES = [
  { label: "4 KiB", bytes: 4 * KIB, opsPerSample: 64 },
  { label: "64 KiB", bytes: 64 * KIB, opsPerSample: 8 },
  { label: "1 MiB", bytes: MIB, opsPerSample: 1 },
  { label: "4 MiB", bytes: 4 * MIB, opsPerSample: 1 },
];

export function prepareHashingTasks(): TaskGroup {
  const buffers = new Map(ONE_SHOT_SIZES.map(({ bytes }) => [bytes, randomBytes(bytes)]));
  const oneShot = ONE_SHOT_SIZES.map(({ label, bytes, opsPerSample }): MicroTask => {
    const data = buffers.get(bytes) as Buffer;
    return {
      name: `blake3 ${label}`,
      operation: `hashBytes of one ${label} buffer`,
      role: "subject",
      bytesPerOp: bytes,
      opsPerSample,
      run: () => hashBytes(data),
    };
  });

  const streamed = randomBytes(STREAMED_BYTES);
  const streaming: MicroTask = {
    name: BLAKE3_STREAMING,
    operation: "StreamingHash of 16 MiB fed in 1 MiB updates, then digest",
    role: "subject",
    bytesPerOp: STREAMED_BYTES,
    run: () => {
      const hash = new StreamingHash();
      for (let offset = 0; offset < STREAMED_BYTES; offset += MIB) {
        hash.update(streamed.subarray(offset, offset + MIB));
      }
      return hash.digest();
    },
  };

  const sameBuffer = buffers.get(MIB) as Buffer;
  const sha256: MicroTask = {
    name: SHA256_1MIB,
    operation: "node:crypto SHA-256 of the 1 MiB buffer BLAKE3 hashes",
    role: "limit",
    bytesPerOp: MIB,
    run: () => createHash("sha256").update(sameBuffer).digest(),
  };
  return { tasks: [...oneShot, streaming, sha256] };
}
