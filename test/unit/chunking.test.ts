import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FixedChunker } from "../../src/chunking/chunker.js";
import { hashBytes, StreamingHash, toHex } from "../../src/chunking/hash.js";
import { chunkFile } from "../../src/chunking/manifest.js";
import { ErrorCode, isTeleportError } from "../../src/errors.js";
import type { ChunkRef } from "../../src/wire/messages.js";

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

  it("gives the same digest streamed in pieces as in one call", () => {
    const data = randomBytes(3 * 1024 * 1024 + 5);
    const streaming = new StreamingHash();
    for (let at = 0; at < data.length; at += 100_003) streaming.update(data.subarray(at, at + 100_003));
    assert.deepEqual(streaming.digest(), hashBytes(data));
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
      const refs: ChunkRef[] = [];
      const chunks = chunkFile(handle, data.length, new FixedChunker(chunkSize));
      let step = await chunks.next();
      while (!step.done) {
        refs.push(...step.value);
        step = await chunks.next();
      }
      return { refs, digest: step.value };
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
    it(`tiles a file (${label}) with chunks whose hashes match their bytes`, async () => {
      const data = randomBytes(size);
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

  it("reports a file that shrank while being read", async () => {
    const path = join(dir, "shrinks");
    await writeFile(path, randomBytes(1000));
    const handle = await open(path, "r");
    try {
      const chunks = chunkFile(handle, 5000, new FixedChunker(64 * 1024));
      await assert.rejects(chunks.next(), (err) => isTeleportError(err, ErrorCode.FILE_CHANGED));
    } finally {
      await handle.close();
    }
  });
});
