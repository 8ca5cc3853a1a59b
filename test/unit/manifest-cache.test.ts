/**
 * The host's manifest cache stays within its byte bound counting what entries really cost, so
 * a host serving a tree of many small files does not grow with the tree.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ManifestCache, unpackChunks } from "../../src/store/manifest-cache.js";

const HASH = Buffer.alloc(32, 7);

function oneChunk(cache: ManifestCache, key: string): void {
  cache.set(key, [{ offset: 0, size: 10_000, hash: HASH }], { size: 10_000, chunkCount: 1, fileHash: HASH });
}

test("many one-chunk manifests count their per-entry overhead against the bound", () => {
  const cache = new ManifestCache(1024 * 1024);
  for (let i = 0; i < 20_000; i++) oneChunk(cache, `2049:${i}:10000:1:1`);

  assert.ok(cache.bytes <= 1024 * 1024, `${cache.bytes} bytes counted`);
  // 44 packed bytes per entry alone would have let all 20,000 in.
  assert.ok(cache.size < 3000, `${cache.size} entries kept in a 1 MiB cache`);
  assert.ok(cache.get("2049:19999:10000:1:1") !== undefined, "the newest entry is kept");
  assert.equal(cache.get("2049:0:10000:1:1"), undefined, "the oldest entries went first");
});

test("storing a key again replaces its entry without counting it twice", () => {
  const cache = new ManifestCache(1024 * 1024);
  oneChunk(cache, "k");
  const once = cache.bytes;
  for (let i = 0; i < 100; i++) oneChunk(cache, "k");
  assert.equal(cache.size, 1);
  assert.equal(cache.bytes, once);
});

test("packed chunk references unpack to what was stored, in batches", () => {
  const cache = new ManifestCache();
  const chunks = Array.from({ length: 5 }, (_, i) => ({
    offset: i * 1_048_576,
    size: 1_048_576,
    hash: Buffer.alloc(32, i),
  }));
  cache.set("f", chunks, { size: 5 * 1_048_576, chunkCount: 5, fileHash: HASH });
  const packed = cache.get("f")?.packed as Buffer;
  const batches = [...unpackChunks(packed, 2)];
  assert.deepEqual(
    batches.map((batch) => batch.length),
    [2, 2, 1],
  );
  assert.deepEqual(batches.flat(), chunks);
});
