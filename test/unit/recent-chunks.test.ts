/** The host's cache of small files' bytes between a manifest and the GET_CHUNKS that follows. */
import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { defaultChunker, FixedChunker } from "../../src/chunking/chunker.js";
import { hashBytes } from "../../src/chunking/hash.js";
import { chunkBytes, chunkFile, collectChunks } from "../../src/chunking/manifest.js";
import { RecentChunks } from "../../src/host/recent-chunks.js";
import { seededRandom } from "../helpers/seed.js";

/** The identity of the one "file" these tests read (see OpenedFile.identity). */
const FILE = "1:2:3:4";

/** Reads a "file" of `size` bytes of `fill` into the cache, as the host's manifest does. */
function put(recent: RecentChunks, fill: number, size: number): Buffer {
  const data = recent.reserve(size);
  data.fill(fill);
  const hash = hashBytes(data);
  recent.add(hash, FILE, data);
  return hash;
}

test("RecentChunks finds chunks by hash and forgets the oldest as its ring wraps", () => {
  const recent = new RecentChunks(3500);
  const holds = (hash: Buffer, fill: number, size: number) =>
    assert.deepEqual(recent.get(hash, FILE), Buffer.alloc(size, fill));
  const a = put(recent, 1, 1000); // [0, 1000)
  const b = put(recent, 2, 1000); // [1000, 2000)
  const c = put(recent, 3, 1000); // [2000, 3000)
  const d = put(recent, 4, 400); // [3000, 3400)
  assert.equal(recent.bytes, 3400);
  holds(a, 1, 1000);

  const e = put(recent, 5, 1000); // no room at the end: wraps to [0, 1000), over a
  assert.equal(recent.get(a, FILE), undefined, "the oldest went first");
  holds(b, 2, 1000);
  holds(c, 3, 1000);
  holds(d, 4, 400);
  holds(e, 5, 1000);

  // Wraps to [0, 2600): b, c and d are older than e, so they go too, d though it is not overwritten.
  const f = put(recent, 6, 2600);
  for (const gone of [b, c, d, e]) assert.equal(recent.get(gone, FILE), undefined);
  holds(f, 6, 2600);

  const g = put(recent, 7, 500); // [2600, 3100)
  const h = put(recent, 8, 1000); // wraps to [0, 1000), over f
  assert.equal(recent.get(f, FILE), undefined);
  holds(g, 7, 500);
  holds(h, 8, 1000);
  assert.equal(recent.bytes, 1500);

  const large = recent.reserve(4000);
  assert.equal(large.length, 4000, "a file larger than the ring gets a buffer of its own");
  recent.add(hashBytes(large), FILE, large);
  assert.equal(recent.bytes, 1500, "and is not kept");
  holds(g, 7, 500);
});

test("RecentChunks serves a chunk only for the file identity it was read from", () => {
  const recent = new RecentChunks(3500);
  const hash = put(recent, 1, 1000);
  assert.deepEqual(recent.get(hash, FILE), Buffer.alloc(1000, 1));
  assert.equal(recent.get(hash, "1:2:3:5"), undefined, "another mtime: another file's bytes");
  assert.equal(recent.get(hash, "1:9:3:4"), undefined, "another inode");
});

test("chunkBytes cuts bytes in memory exactly as chunkFile cuts the same bytes in a file", async (t) => {
  const data = seededRandom(t).bytes(3 * 1024 * 1024 + 12_345);
  const dir = mkdtempSync(join(tmpdir(), "teleport-chunk-bytes-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "file");
  writeFileSync(path, data);
  const fd = openSync(path, "r");
  t.after(() => closeSync(fd));
  const chunker = defaultChunker();
  const fromFile = await collectChunks(chunkFile(fd, data.length, chunker));
  const inMemory = chunkBytes(data, chunker);
  assert.ok(inMemory.chunks.length > 10);
  assert.deepEqual(inMemory, fromFile);
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
