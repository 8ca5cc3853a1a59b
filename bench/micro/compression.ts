/**
 * zstd through src/compression, on 64 KiB chunks of real source text (the TypeScript compiler,
 * present wherever the project's dev dependencies are): compression at the levels the host
 * adapts between, decompression, and a host group of random chunks, which the entropy sample
 * sends as they are without running zstd (what compress_random relies on).
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { compressFrames } from "../../src/compression/frames.js";
import { Compressor, compressBound, Decompressor } from "../../src/compression/zstd.js";
import { FRAME_HEADER_SIZE, writeFrameHeader } from "../../src/wire/frame.js";
import { CHUNK_DATA_HEADER_SIZE, MessageType } from "../../src/wire/messages.js";
import { KIB, MIB, type MicroTask, type TaskGroup } from "./task.js";

export const ZSTD_LEVELS = [1, 3, 6, 9];
export const zstdTaskName = (level: number) => `zstd level ${level} 64 KiB text`;
export const ZSTD_DECOMPRESS = "zstd decompress 64 KiB text";
export const DENSE_GROUP = "compressFrames 2 MiB random";

const CHUNK = 64 * KIB;
const TEXT_BYTES = 2 * MIB;

export function prepareCompressionTasks(): TaskGroup {
  const compiler = createRequire(import.meta.url).resolve("typescript/lib/typescript.js");
  const text = readFileSync(compiler).subarray(0, TEXT_BYTES);
  const chunks = Array.from({ length: text.length / CHUNK }, (_, i) =>
    text.subarray(i * CHUNK, (i + 1) * CHUNK),
  );
  const compressor = new Compressor();
  const target = Buffer.allocUnsafe(compressBound(CHUNK));

  const levels = ZSTD_LEVELS.map(
    (level): MicroTask => ({
      name: zstdTaskName(level),
      operation: `Compressor.compress at level ${level} of 2 MiB of source text in 64 KiB chunks`,
      role: "subject",
      bytesPerOp: text.length,
      run: () => {
        for (const chunk of chunks) compressor.compress(target, chunk, level);
      },
    }),
  );

  const frames = chunks.map((chunk) => {
    const length = compressor.compress(target, chunk, 3);
    return Buffer.from(target.subarray(0, length));
  });
  const decompressor = new Decompressor();
  const plain = Buffer.allocUnsafe(CHUNK);
  const decompress: MicroTask = {
    name: ZSTD_DECOMPRESS,
    operation: "Decompressor.decompressExactly of 2 MiB of level-3 source text in 64 KiB chunks",
    role: "subject",
    bytesPerOp: text.length,
    run: () => {
      for (const frame of frames) decompressor.decompressExactly(plain, frame);
    },
  };

  // A group as the host lays it out: CHUNK_DATA frames back to back. None compresses, so the
  // frames stay as they are and every run sees the same input.
  const prefix = FRAME_HEADER_SIZE + CHUNK_DATA_HEADER_SIZE;
  const group = Buffer.allocUnsafe(chunks.length * (prefix + CHUNK));
  for (let i = 0, at = 0; i < chunks.length; i++, at += prefix + CHUNK) {
    writeFrameHeader(group, at, MessageType.CHUNK_DATA, 1, CHUNK_DATA_HEADER_SIZE + CHUNK);
    randomBytes(prefix - FRAME_HEADER_SIZE + CHUNK).copy(group, at + FRAME_HEADER_SIZE);
  }
  const store = new Uint8Array(chunks.length);
  const scratch = Buffer.allocUnsafe(compressBound(CHUNK));
  const dense: MicroTask = {
    name: DENSE_GROUP,
    operation: "compressFrames of a 2 MiB group of random 64 KiB chunks (each sampled, none compressed)",
    role: "subject",
    bytesPerOp: group.length,
    run: () => {
      const result = compressFrames(group, group.length, 3, store, compressor, scratch);
      if (result.compressedChunks !== 0) throw new Error("random data compressed");
    },
  };
  return { tasks: [...levels, decompress, dense] };
}
