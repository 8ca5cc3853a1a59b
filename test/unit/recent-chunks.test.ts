/** The host's cache of small files' bytes between a manifest and the GET_CHUNKS that follows. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { defaultChunker, FixedChunker } from "../../src/chunking/chunker.js";
import { hashBytes } from "../../src/chunking/hash.js";
import { chunkBytes, chunkFile } from "../../src/chunking/manifest.js";
import { RecentChunks } from "../../src/host/recent-chunks.js";

function chunk(fill: number, size: number): { hash: Buffer; data: Buffer } {
  const data = Buffer.alloc(size, fill);
  return { hash: hashBytes(data), data };
}

test("RecentChunks finds chunks by hash and keeps at most its capacity, dropping the oldest", () => {
  const recent = new RecentChunks(3000);
  const [first, second, third, fourth] = [chunk(1, 1000), chunk(2, 1000), chunk(3, 1000), chunk(4, 1000)];
  for (const { hash, data } of [first, second, third]) recent.add(hash, data);
  assert.equal(recent.bytes, 3000);
  assert.deepEqual(recent.get(first.hash), first.data);

  recent.add(fourth.hash, fourth.data);
  assert.equal(recent.bytes, 3000);
  assert.equal(recent.get(first.hash), undefined, "the oldest went first");
  for (const { hash, data } of [second, third, fourth]) assert.deepEqual(recent.get(hash), data);

  recent.add(fourth.hash, fourth.data);
  assert.equal(recent.bytes, 3000, "a chunk held already is not counted twice");
  recent.add(hashBytes(Buffer.alloc(4000)), Buffer.alloc(4000));
  assert.equal(recent.bytes, 3000, "a chunk larger than the whole cache is not kept");
});

test("chunkBytes cuts bytes in memory exactly as chunkFile cuts the same bytes in a file", async (t) => {
  const data = randomBytes(3 * 1024 * 1024 + 12_345);
  const dir = mkdtempSync(join(tmpdir(), "teleport-chunk-bytes-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "file");
  writeFileSync(path, data);
  const fd = openSync(path, "r");
  t.after(() => closeSync(fd));
  const chunker = defaultChunker();
  const fromFile = [];
  const listing = chunkFile(fd, data.length, chunker);
  let step = await listing.next();
  while (!step.done) {
    fromFile.push(...step.value);
    step = await listing.next();
  }
  const inMemory = chunkBytes(data, chunker);
  assert.ok(inMemory.chunks.length > 10);
  assert.deepEqual(inMemory.chunks, fromFile);
  assert.deepEqual(inMemory.digest, step.value);
});

test("chunkBytes lists the chunks a file of those bytes is cut into", () => {
  const data = Buffer.alloc(2500, 9);
  const { chunks, digest } = chunkBytes(data, new FixedChunker(1000));
  assert.deepEqual(
    chunks.map(({ offset, size }) => [offset, size]),
    [
      [0, 1000],
      [1000, 1000],
      [2000, 500],
    ],
  );
  assert.deepEqual(chunks[2]?.hash, hashBytes(data.subarray(2000)));
  assert.equal(digest.chunkCount, 3);
  assert.deepEqual(digest.fileHash, hashBytes(Buffer.concat(chunks.map((c) => c.hash))));
  assert.equal(chunkBytes(Buffer.alloc(0), new FixedChunker(1000)).chunks.length, 0);
});
