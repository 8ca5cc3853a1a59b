/**
 * The physical limit of a data path in this process: copying memory. No stage that touches every
 * byte (hashing, decoding, decrypting) can beat one copy of it, so each is reported against this.
 */
import { randomBytes } from "node:crypto";
import { MIB, type TaskGroup } from "./task.js";

export const MEMCPY_4MIB = "memcpy 4 MiB";

export function prepareMemoryTasks(): TaskGroup {
  const source = randomBytes(4 * MIB);
  // Buffer.alloc zero-fills, so the target's pages are mapped before the first timed copy.
  const target = Buffer.alloc(4 * MIB);
  return {
    tasks: [
      {
        name: MEMCPY_4MIB,
        operation: "Buffer.copy of 4 MiB into a preallocated buffer",
        role: "limit",
        bytesPerOp: source.length,
        run: () => source.copy(target),
      },
    ],
  };
}
