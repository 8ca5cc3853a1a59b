import assert from "node:assert/strict";
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ContentDefinedChunker, DEFAULT_CDC_SIZES, FixedChunker } from "../../src/chunking/chunker.js";
import { hashBytes, StreamingHash, toHex } from "../../src/chunking/hash.js";
import { ChunkListHash, chunkBytes, chunkFile, collectChunks } from "../../src/chunking/manifest.js";
import { ErrorCode, isTeleportError } from "../../src/errors.js";
import type { ChunkRef } from "../../src/wire/messages.js";
import { seededRandom } from "../helpers/seed.js";
import { pseudoRandomBytes } from "../helpers/tree.js";

describe("BLAKE3", () => {
  it("matches the reference test vectors", () => {
    // From the BLAKE3 specification's test vectors (input of 0 and 1 bytes of the 0..250 pattern).
    assert.equal(
      toHex(hashBytes(Buffer.alloc(0))),
      "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    );
    assert.equal(
      toHex(hashBytes(Buffer.from([0]))),
      "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
    );
  });

  it("gives the same digest streamed in pieces as in one call", (t) => {
    const data = seededRandom(t).bytes(3 * 1024 * 1024 + 5);
    const streaming = new StreamingHash();
    for (let at = 0; at < data.length; at += 100_003) streaming.update(data.subarray(at, at + 100_003));
    assert.deepEqual(streaming.digest(), hashBytes(data));
  });
});

describe("ChunkListHash", () => {
  it("is BLAKE3 of the chunk hashes back to back, for one hash and for thousands", (t) => {
    const random = seededRandom(t);
    for (const count of [0, 1, 8, 9, 1024, 1025, 2048, 5000]) {
      const hashes = Array.from({ length: count }, () => random.bytes(32));
      const list = new ChunkListHash();
      for (const hash of hashes) list.add(hash);
      assert.ok(list.digest().equals(hashBytes(Buffer.concat(hashes))), `${count} hashes`);
    }
  });
});

describe("chunkFile", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "teleport-chunk-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function chunksOf(data: Buffer, chunkSize: number) {
    const path = join(dir, `f${data.length}-${chunkSize}`);
    await writeFile(path, data);
    const handle = await open(path, "r");
    try {
      const { chunks: refs, digest } = await collectChunks(
        chunkFile(handle.fd, data.length, new FixedChunker(chunkSize)),
      );
      return { refs, digest };
    } finally {
      await handle.close();
    }
  }

  for (const [label, size] of [
    ["empty", 0],
    ["one byte", 1],
    ["exactly one chunk", 64 * 1024],
    ["many chunks, not a multiple", 64 * 1024 * 9 + 123],
    ["more than one read buffer", 64 * 1024 * 4 * 3 + 1],
  ] as const) {
    it(`tiles a file (${label}) with chunks whose hashes match their bytes`, async (t) => {
      const data = seededRandom(t).bytes(size);
      const { refs, digest } = await chunksOf(data, 64 * 1024);
      let offset = 0;
      const root = new StreamingHash();
      for (const ref of refs) {
        assert.equal(ref.offset, offset);
        assert.ok(ref.size > 0 && ref.size <= 64 * 1024);
        assert.deepEqual(ref.hash, hashBytes(data.subarray(ref.offset, ref.offset + ref.size)));
        root.update(ref.hash);
        offset += ref.size;
      }
      assert.equal(offset, size);
      assert.equal(digest.size, size);
      assert.equal(digest.chunkCount, refs.length);
      assert.equal(refs.length, Math.ceil(size / (64 * 1024)));
      assert.deepEqual(digest.fileHash, root.digest());
    });
  }

  it("lists files read at once, some abandoned midway, each by its own bytes", async (t) => {
    // No two listings may share a read buffer: content-defined cuts leave bytes in it from one
    // read to the next.
    const random = seededRandom(t);
    const chunker = new ContentDefinedChunker({ min: 2048, avg: 8192, max: 16384 });
    const files = await Promise.all(
      Array.from({ length: 24 }, async (_, i) => {
        const data = random.bytes(1 + random.below(256 * 1024));
        const path = join(dir, `at-once-${i}`);
        await writeFile(path, data);
        const handle = await open(path, "r");
        return {
          data,
          handle,
          listing: chunkFile(handle.fd, data.length, chunker),
          chunks: [] as ChunkRef[],
        };
      }),
    );
    try {
      // Six listings at a time, a new one started as one ends.
      let active: typeof files = [];
      for (let started = 0; active.length > 0 || started < files.length; ) {
        while (active.length < 6 && started < files.length)
          active.push(files[started++] as (typeof files)[0]);
        const next: typeof files = [];
        for (const file of active) {
          const step = await file.listing.next();
          if (step.done) {
            const expected = chunkBytes(file.data, chunker);
            assert.deepEqual(file.chunks, expected.chunks);
            assert.deepEqual(step.value, expected.digest);
          } else if (files.indexOf(file) % 5 === 4) {
            await file.listing.return({ size: 0, chunkCount: 0, fileHash: Buffer.alloc(0) });
          } else {
            file.chunks.push(...step.value);
            next.push(file);
          }
        }
        active = next;
      }
    } finally {
      for (const file of files) await file.handle.close();
    }
  });

  it("reports a file that shrank while being read", async () => {
    const path = join(dir, "shrinks");
    await writeFile(path, pseudoRandomBytes(1000, "shrinks"));
    const handle = await open(path, "r");
    try {
      const chunks = chunkFile(handle.fd, 5000, new FixedChunker(64 * 1024));
      await assert.rejects(chunks.next(), (err) => isTeleportError(err, ErrorCode.FILE_CHANGED));
    } finally {
      await handle.close();
    }
  });
});

describe("ContentDefinedChunker", () => {
  const chunker = new ContentDefinedChunker();
  const { min, max } = DEFAULT_CDC_SIZES;

  function cut(data: Buffer): Array<{ offset: number; hash: string }> {
    const chunks: Array<{ offset: number; hash: string }> = [];
    for (let offset = 0; offset < data.length; ) {
      const length = chunker.nextChunkLength(data.subarray(offset), true);
      assert.ok(length > 0);
      chunks.push({ offset, hash: toHex(hashBytes(data.subarray(offset, offset + length))) });
      offset += length;
    }
    return chunks;
  }

  it("keeps every chunk between min and max, except the last", (t) => {
    const data = seededRandom(t).bytes(8 * 1024 * 1024);
    const chunks = cut(data);
    chunks.forEach((chunk, i) => {
      const end = chunks[i + 1]?.offset ?? data.length;
      const size = end - chunk.offset;
      assert.ok(size <= max, `chunk ${i} is ${size} bytes`);
      if (i < chunks.length - 1) assert.ok(size > min, `chunk ${i} is ${size} bytes`);
    });
  });

  it("asks for more bytes until it can decide, and always cuts at end of file", (t) => {
    const data = seededRandom(t).bytes(max);
    const whole = chunker.nextChunkLength(data, false);
    assert.ok(whole > min && whole <= max);
    assert.equal(chunker.nextChunkLength(data.subarray(0, min), false), 0);
    assert.equal(chunker.nextChunkLength(data.subarray(0, 100), true), 100);
    // Cutting a prefix that contains the boundary finds the same boundary.
    assert.equal(chunker.nextChunkLength(data.subarray(0, whole), false), whole);
  });

  it("moves only the boundaries near an insertion", (t) => {
    const original = seededRandom(t).bytes(8 * 1024 * 1024);
    const edited = Buffer.concat([
      original.subarray(0, 3_000_000),
      Buffer.from("inserted"),
      original.subarray(3_000_000),
    ]);
    const before = new Set(cut(original).map((chunk) => chunk.hash));
    const after = cut(edited);
    const changed = after.filter((chunk) => !before.has(chunk.hash));
    assert.ok(changed.length >= 1 && changed.length <= 2, `${changed.length} chunks changed`);
  });

  it("cuts the same content the same way every time (a fixed gear table)", () => {
    const data = pseudoRandomBytes(1024 * 1024, "cdc-pinned");
    assert.deepEqual(cut(data), cut(Buffer.from(data)));
    // Pinned: a peer with another table or mask would find no chunk in common with us.
    const boundaries = [
      0, 79320, 145690, 214520, 306200, 378073, 454288, 532306, 681641, 754996, 830458, 887079, 995177,
    ];
    assert.deepEqual(
      cut(data).map((chunk) => chunk.offset),
      boundaries,
    );
  });
});
