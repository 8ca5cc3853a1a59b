import assert from "node:assert/strict";
import { test } from "node:test";
import { CompressionPolicy, isLoopbackHost } from "../../src/client/pool/compression-policy.js";
import { ADAPTIVE_LEVELS, AdaptiveLevel } from "../../src/compression/adaptive-level.js";
import {
  hasCompressedExtension,
  hasCompressedMagic,
  looksIncompressible,
  sampleEntropy,
} from "../../src/compression/compressible.js";
import { compressFrames } from "../../src/compression/frames.js";
import { Compressor, compressBound, Decompressor } from "../../src/compression/zstd.js";
import { FRAME_HEADER_SIZE, writeFrameHeader } from "../../src/wire/frame.js";
import {
  CHUNK_DATA_HEADER_SIZE,
  COMPRESS_ADAPTIVE,
  COMPRESS_ADAPTIVE_ALWAYS,
  MAX_CHUNK_SIZE,
  MessageType,
} from "../../src/wire/messages.js";
import { pseudoRandomBytes } from "../helpers/tree.js";

const PREFIX = FRAME_HEADER_SIZE + CHUNK_DATA_HEADER_SIZE;

function text(bytes: number): Buffer {
  const line = "export function chunkFile(path: string, chunker: Chunker): AsyncGenerator<ChunkRef> {\n";
  return Buffer.from(line.repeat(Math.ceil(bytes / line.length)).slice(0, bytes));
}

/** CHUNK_DATA frames for `chunks`, back to back, as the host lays out a group. */
function framesOf(chunks: Buffer[]): Buffer {
  const frames = Buffer.alloc(chunks.reduce((sum, chunk) => sum + PREFIX + chunk.length, 0));
  let at = 0;
  for (const [i, chunk] of chunks.entries()) {
    writeFrameHeader(frames, at, MessageType.CHUNK_DATA, 7, CHUNK_DATA_HEADER_SIZE + chunk.length);
    frames.fill(i + 1, at + FRAME_HEADER_SIZE, at + PREFIX); // a recognisable "hash"
    chunk.copy(frames, at + PREFIX);
    at += PREFIX + chunk.length;
  }
  return frames;
}

function parseFrames(frames: Buffer): { type: number; requestId: number; hash: Buffer; payload: Buffer }[] {
  const parsed = [];
  for (let at = 0; at < frames.length; ) {
    const end = at + 4 + frames.readUInt32LE(at);
    parsed.push({
      type: frames[at + 4] as number,
      requestId: frames.readUInt32LE(at + 5),
      hash: frames.subarray(at + FRAME_HEADER_SIZE, at + PREFIX),
      payload: frames.subarray(at + PREFIX, end),
    });
    at = end;
  }
  return parsed;
}

test("compressed formats are known by name and by their first bytes", () => {
  assert.ok(hasCompressedExtension("videos/holiday.MP4"));
  assert.ok(hasCompressedExtension("a/b.tar.gz"));
  assert.ok(!hasCompressedExtension("src/main.ts"));
  assert.ok(!hasCompressedExtension("zip/README")); // a folder's name is not an extension
  assert.ok(hasCompressedMagic(Buffer.from([0x1f, 0x8b, 8, 0])));
  assert.ok(hasCompressedMagic(Buffer.from("\0\0\0\x20ftypisom", "latin1")));
  assert.ok(!hasCompressedMagic(Buffer.from("#!/bin/sh\n")));
});

test("a sample's entropy tells random bytes from text", () => {
  assert.ok(sampleEntropy(pseudoRandomBytes(256 * 1024, "entropy")) > 7.9);
  assert.ok(sampleEntropy(text(256 * 1024)) < 5);
  assert.ok(looksIncompressible(pseudoRandomBytes(64 * 1024, "dense")));
  assert.ok(!looksIncompressible(text(64 * 1024)));
  assert.ok(!looksIncompressible(Buffer.alloc(100, 0xff)), "too small to judge");
});

test("a group is compressed in place: chunks that pay become CHUNK_ZSTD, the rest stay as they were", () => {
  const chunks = [
    text(64 * 1024), // compresses well
    pseudoRandomBytes(64 * 1024, "group"), // dense: sent as it is
    Buffer.from("tiny"), // too small to save 5%
    text(32 * 1024), // compressible, but its file is stored (a .zip, say)
    text(100 * 1024),
  ];
  const frames = framesOf(chunks);
  const store = Uint8Array.from([0, 0, 0, 1, 0]);
  const scratch = Buffer.alloc(compressBound(MAX_CHUNK_SIZE));
  const result = compressFrames(frames, frames.length, 3, store, new Compressor(), scratch);
  const out = parseFrames(frames.subarray(0, result.length));
  assert.deepEqual(
    out.map((frame) => frame.type),
    [
      MessageType.CHUNK_ZSTD,
      MessageType.CHUNK_DATA,
      MessageType.CHUNK_DATA,
      MessageType.CHUNK_DATA,
      MessageType.CHUNK_ZSTD,
    ],
  );
  assert.equal(result.compressedChunks, 2);
  assert.ok(result.length < frames.length / 2, `${result.length} of ${frames.length}`);
  const decompressor = new Decompressor();
  for (const [i, frame] of out.entries()) {
    assert.equal(frame.requestId, 7);
    assert.ok(frame.hash.equals(Buffer.alloc(CHUNK_DATA_HEADER_SIZE, i + 1)), `hash of frame ${i} kept`);
    const chunk = chunks[i] as Buffer;
    if (frame.type === MessageType.CHUNK_DATA) {
      assert.ok(frame.payload.equals(chunk));
    } else {
      const data = Buffer.alloc(chunk.length);
      decompressor.decompressExactly(data, frame.payload);
      assert.ok(data.equals(chunk));
    }
  }
});

test("an empty group stays empty", () => {
  const result = compressFrames(
    Buffer.alloc(0),
    0,
    3,
    new Uint8Array(0),
    new Compressor(),
    Buffer.alloc(1024),
  );
  assert.equal(result.length, 0);
});

test("a compressed chunk must decompress to exactly its size: corrupt, longer or shorter frames are refused", () => {
  const compressor = new Compressor();
  const data = text(10_000);
  const packed = Buffer.alloc(compressBound(data.length));
  const frame = packed.subarray(0, compressor.compress(packed, data, 3));
  const decompressor = new Decompressor();
  const target = Buffer.alloc(data.length);
  decompressor.decompressExactly(target, frame);
  assert.ok(target.equals(data));
  assert.throws(() => decompressor.decompressExactly(Buffer.alloc(data.length - 1), frame), {
    code: "TELEPORT_ERR_PROTOCOL",
  });
  assert.throws(() => decompressor.decompressExactly(Buffer.alloc(data.length + 1), frame), {
    code: "TELEPORT_ERR_PROTOCOL",
  });
  assert.throws(() => decompressor.decompressExactly(target, Buffer.from("not a zstd frame at all")), {
    code: "TELEPORT_ERR_PROTOCOL",
  });
});

test("the policy: off asks for nothing, on for compression, auto only on long paths and never to loopback", () => {
  const long = { minRttMs: 50, loopback: false };
  const short = { minRttMs: 0.4, loopback: false };
  assert.equal(new CompressionPolicy("off").level(long), 0);
  assert.equal(new CompressionPolicy("on", 6).level(short), 6, "a pinned level");
  assert.equal(new CompressionPolicy("on").level(short), COMPRESS_ADAPTIVE_ALWAYS, "the host's choice");
  assert.equal(new CompressionPolicy("auto", 9).level(long), 9);
  const auto = new CompressionPolicy("auto");
  assert.equal(auto.level(long), COMPRESS_ADAPTIVE);
  assert.equal(auto.level(short), 0);
  assert.equal(auto.level({ minRttMs: undefined, loopback: false }), 0, "no round trip measured yet");
  assert.equal(auto.level({ minRttMs: 50, loopback: true }), 0, "a loaded loopback looks long");
  assert.throws(() => new CompressionPolicy("on", 0), RangeError);
  assert.throws(() => new CompressionPolicy("on", 23), RangeError);
  assert.ok(isLoopbackHost("127.0.0.1") && isLoopbackHost("::1") && isLoopbackHost("localhost"));
  assert.ok(!isLoopbackHost("10.0.0.5") && !isLoopbackHost("127.example.com"));
});

test("the adaptive level rises while the compressor idles, falls once it is busy, and stays in bounds", () => {
  let now = 0;
  const level = new AdaptiveLevel({}, now);
  const highest = ADAPTIVE_LEVELS[ADAPTIVE_LEVELS.length - 1] as number;
  assert.equal(level.level(now), 3);
  /** Runs `seconds` of groups, one every 50 ms, each compressing for `share` of that time. */
  const run = (seconds: number, share: number) => {
    for (let i = 0; i < seconds * 20; i++) {
      now += 50;
      level.compressed(50 * share, now);
    }
  };
  run(1, 0.1); // a slow link: the compressor is busy 10% of the time
  assert.ok(level.level(now) > 3, `went up to ${level.level(now)}`);
  run(10, 0.1);
  assert.equal(level.level(now), highest, "no higher than the last level");
  run(1, 0.95); // now the compressor holds the transfer up
  assert.ok(level.level(now) < highest, `came down to ${level.level(now)}`);
  run(10, 0.95);
  assert.equal(level.level(now), 0, "even level 1 is too slow: chunks go as they are");
  now += 1000;
  assert.equal(level.level(now), 0);
  now += 1000;
  assert.equal(level.level(now), 1, "level 1 is tried again after a while");
  run(2, 0.6); // between the thresholds: it holds
  assert.equal(level.level(now), 1);
  now += 10_000; // one group after a long pause: not enough to judge by
  level.compressed(5, now);
  assert.equal(level.level(now), 1);
});

test("asked to compress always, the adaptive level stops at 1", () => {
  let now = 0;
  const level = new AdaptiveLevel({ always: true }, now);
  for (let i = 0; i < 200; i++) {
    now += 50;
    level.compressed(49, now);
  }
  assert.equal(level.level(now), 1);
});
