/**
 * The addon's cut-point scan (native/cdc.c) against the JS chunker it must equal byte for byte:
 * random and degenerate data, random lengths around min, avg and max, at and before end of file,
 * views that start inside their buffer, and `lengths` arrays too short for every cut.
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, it } from "node:test";
import {
  type CdcSizes,
  type Chunker,
  ContentDefinedChunker,
  FixedChunker,
} from "../../src/chunking/chunker.js";
import { chunkBytes } from "../../src/chunking/manifest.js";
import type { NativeCdc } from "../../src/platform/native.js";
import { type SeededRandom, seededRandom } from "../helpers/seed.js";

/** The addon's scan whatever TELEPORT_NATIVE says, so the portable run checks it too. */
function loadScan(): NativeCdc | undefined {
  if (process.platform !== "linux") return undefined;
  try {
    const addon = createRequire(import.meta.url)(
      "../../../build/Release/teleport_io.node",
    ) as Partial<NativeCdc>;
    return addon.cdcCuts === undefined ? undefined : { cdcCuts: addon.cdcCuts };
  } catch {
    return undefined; // not built
  }
}

const scan = loadScan();
const skip = scan === undefined ? "the addon is not built" : false;

const RULES: CdcSizes[] = [
  { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 },
  { min: 256, avg: 1024, max: 4096 },
  { min: 2048, avg: 8192, max: 32768, normalization: 1 },
  { min: 1000, avg: 4096, max: 5000, normalization: 3 },
];

/** The cuts nextChunkLength makes, one call per chunk: the reference. */
function referenceCuts(chunker: Chunker, data: Uint8Array, eof: boolean, capacity: number): number[] {
  const lengths: number[] = [];
  for (let at = 0; lengths.length < capacity && at < data.length; ) {
    const length = chunker.nextChunkLength(data.subarray(at), eof);
    if (length === 0) break;
    lengths.push(length);
    at += length;
  }
  return lengths;
}

function cuts(chunker: Chunker, data: Uint8Array, eof: boolean, capacity: number): number[] {
  const lengths = new Uint32Array(capacity);
  return [...lengths.subarray(0, chunker.cut(data, eof, lengths))];
}

/** Incompressible, all one byte, or text-like (a few symbols): each reaches other branches. */
function sample(random: SeededRandom, size: number): Buffer {
  const kind = random.below(3);
  if (kind === 0) return random.bytes(size);
  if (kind === 1) return Buffer.alloc(size, random.below(256));
  const alphabet = random.bytes(1 + random.below(8));
  const noise = random.bytes(size);
  for (let i = 0; i < size; i++) noise[i] = alphabet[(noise[i] as number) % alphabet.length] as number;
  return noise;
}

function lengthAround(random: SeededRandom, sizes: CdcSizes): number {
  const { min, avg, max } = sizes;
  const edges = [0, 1, min - 1, min, min + 1, avg - 1, avg, avg + 1, max - 1, max, max + 1];
  if (random.below(3) === 0) return edges[random.below(edges.length)] as number;
  return random.below(3 * max + 1);
}

describe("native cut-point scan", () => {
  it("cuts where the JS chunker does, for every rule, length and view", { skip }, (t) => {
    const random = seededRandom(t);
    for (const sizes of RULES) {
      const native = new ContentDefinedChunker(sizes, scan ?? null);
      const portable = new ContentDefinedChunker(sizes, null);
      for (let round = 0; round < 150; round++) {
        const start = random.below(64);
        const data = sample(random, start + lengthAround(random, sizes)).subarray(start);
        const eof = random.below(2) === 0;
        const capacity = random.below(4) === 0 ? 1 + random.below(3) : 64;
        const expected = referenceCuts(portable, data, eof, capacity);
        const what = `${portable.id}, ${data.length} bytes at ${start}, eof ${eof}, room for ${capacity}`;
        assert.deepEqual(cuts(native, data, eof, capacity), expected, what);
        assert.deepEqual(cuts(portable, data, eof, capacity), expected, what);
      }
    }
  });

  it("lists the same chunks of a long buffer as the JS chunker, past one call's room for lengths", {
    skip,
  }, (t) => {
    const data = seededRandom(t).bytes(24 * 1024 * 1024);
    const native = chunkBytes(data, new ContentDefinedChunker(undefined, scan ?? null));
    const portable = chunkBytes(data, new ContentDefinedChunker(undefined, null));
    assert.ok(native.chunks.length > 256, `${native.chunks.length} chunks`);
    assert.deepEqual(native.chunks, portable.chunks);
    assert.deepEqual(native.digest, portable.digest);
  });

  it("refuses a rule that is not one", { skip }, () => {
    const lengths = new Uint32Array(4);
    assert.throws(() => scan?.cdcCuts(new Int32Array(5), Buffer.alloc(10), true, lengths), TypeError);
    assert.throws(() => scan?.cdcCuts(new Int32Array(261), Buffer.alloc(10), true, lengths), TypeError);
  });
});

describe("Chunker.cut", () => {
  it("gives a fixed-size chunker's cuts, stopping where its lengths are full", () => {
    const chunker = new FixedChunker(1000);
    const data = Buffer.alloc(3500);
    assert.deepEqual(cuts(chunker, data, true, 8), [1000, 1000, 1000, 500]);
    assert.deepEqual(cuts(chunker, data, false, 8), [1000, 1000, 1000]);
    assert.deepEqual(cuts(chunker, data, true, 2), [1000, 1000]);
    assert.deepEqual(cuts(chunker, Buffer.alloc(0), true, 8), []);
  });
});
