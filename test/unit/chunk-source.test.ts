/**
 * ChunkSource in front of a ChunkStore and local copies, with a counting fetcher: what is fetched
 * lands in the store (a read or a prefetch), a second source on the same store fetches nothing,
 * prefetch skips what the store or a local file holds, and a local file's chunk is not fetched;
 * chunks fetched into the store are served from there while its pack lock vouches for them.
 */
import assert from "node:assert/strict";
import { writeSync } from "node:fs";
import { test } from "node:test";
import { hashBytes } from "../../src/chunking/hash.js";
import type { ChunkFetcher } from "../../src/mount/chunk-fetcher.js";
import { ChunkSource } from "../../src/mount/chunk-source.js";
import { ChunkStore } from "../../src/mount/chunk-store.js";
import { StoredChunk } from "../../src/mount/stored-chunk.js";
import type { ChunkRef } from "../../src/wire/messages.js";
import { chunkBytes } from "../helpers/chunk-packs.js";
import { tempDir, waitFor } from "../helpers/context.js";
import { pseudoRandomBytes } from "../helpers/tree.js";

const SIZE = 32 * 1024;
const file = pseudoRandomBytes(8 * SIZE, "chunk-source");
const refs: ChunkRef[] = Array.from({ length: 8 }, (_, i) => ({
  offset: i * SIZE,
  size: SIZE,
  hash: hashBytes(file.subarray(i * SIZE, (i + 1) * SIZE)),
}));

function bytesOf(ref: ChunkRef): Buffer {
  return file.subarray(ref.offset, ref.offset + ref.size);
}

/** A fetcher serving `file`, counting the chunks it was asked for. */
function countingFetcher(): { fetch: ChunkFetcher; asked: ChunkRef[] } {
  const asked: ChunkRef[] = [];
  const fetch: ChunkFetcher = async (_path, wanted, onChunk) => {
    for (const ref of wanted) {
      asked.push(ref);
      onChunk(ref, Buffer.from(bytesOf(ref)));
    }
  };
  return { fetch, asked };
}

const signal = new AbortController().signal;

test("fetched chunks land in the store; a second source on it fetches nothing", async (t) => {
  const folder = await tempDir(t, "chunk-source");
  const first = countingFetcher();
  const store = ChunkStore.open(folder, 1 << 20);
  const source = new ChunkSource(first.fetch, { store });
  const [a, b, ...rest] = refs as [ChunkRef, ChunkRef, ...ChunkRef[]];
  assert.ok(chunkBytes(await source.get("f", a, signal))?.equals(bytesOf(a)));
  source.prefetch("f", [a, b, ...rest.slice(0, 2)], signal);
  assert.equal(first.asked.length, 4, "a once, then b and two more as one prefetch");
  await store.close();

  const second = countingFetcher();
  const reopened = ChunkStore.open(folder, 1 << 20);
  const again = new ChunkSource(second.fetch, { store: reopened });
  for (const ref of refs.slice(0, 4))
    assert.ok(chunkBytes(await again.get("f", ref, signal))?.equals(bytesOf(ref)));
  again.prefetch("f", refs.slice(0, 4), signal);
  assert.deepEqual(second.asked, [], "everything came from the store");
  assert.ok(again.has(refs[3] as ChunkRef));
  assert.deepEqual(again.counts(), {
    fetchedChunks: 0,
    fetchedBytes: 0,
    storeChunks: 4,
    storeBytes: 4 * SIZE,
    localChunks: 0,
    localBytes: 0,
  });
  await reopened.close();
});

test("a chunk a local file holds is read from it, not fetched", async () => {
  const fetcher = countingFetcher();
  const localRef = refs[2] as ChunkRef;
  const local = { read: (ref: ChunkRef) => (ref === localRef ? Buffer.from(bytesOf(ref)) : undefined) };
  const source = new ChunkSource(fetcher.fetch, { local });
  assert.ok(chunkBytes(await source.get("f", localRef, signal))?.equals(bytesOf(localRef)));
  source.prefetch("f", refs.slice(1, 4), signal);
  assert.deepEqual(
    fetcher.asked.map((ref) => ref.offset),
    [SIZE, 3 * SIZE],
    "only the chunks no local file holds were fetched",
  );
  assert.equal(source.counts().localChunks, 1);
});

test("chunks fetched into the store are served from it, and read again once it no longer vouches for them", async (t) => {
  const folder = await tempDir(t, "chunk-source-stored");
  // Idle packs are closed at the first sweep (every second): their chunks stop being vouched for.
  const store = ChunkStore.open(folder, 1 << 20, { lockIdleMs: 0 });
  t.after(() => store.close());
  const asked: ChunkRef[] = [];
  // What the stream pool does for a read-ahead batch: the chunks written into a region of the pack.
  const fetch: ChunkFetcher = async (_path, wanted, onChunk) => {
    asked.push(...wanted);
    const batch = store.reserveBatch(wanted);
    assert.ok(batch !== undefined);
    for (const [i, ref] of wanted.entries())
      writeSync(batch.fd, bytesOf(ref), 0, ref.size, batch.positions[i] ?? -1);
    const chunks = await batch.commit();
    for (const [i, ref] of wanted.entries()) {
      const chunk = chunks?.[i];
      if (chunk !== undefined) onChunk(ref, chunk);
    }
  };
  const source = new ChunkSource(fetch, { store });
  const [a, b] = refs as [ChunkRef, ChunkRef];
  source.prefetch("f", [a, b], signal);
  const first = await source.get("f", a, signal);
  assert.ok(first instanceof StoredChunk && first.held, "where the store holds it");
  assert.ok(chunkBytes(first)?.equals(bytesOf(a)));
  assert.equal(await source.get("f", a, signal), first, "remembered");
  await waitFor(() => !first.held, { what: "the pack closed while idle", timeoutMs: 10_000 });
  const again = await source.get("f", a, signal);
  assert.notEqual(again, first, "not the stale one");
  assert.ok(chunkBytes(again)?.equals(bytesOf(a)), "read again from the store, verified");
  source.prefetch("f", [b], signal);
  assert.ok(store.preloaded(b) !== undefined, "a stale chunk is preloaded again, not skipped");
  assert.ok(chunkBytes(await source.get("f", b, signal))?.equals(bytesOf(b)));
  assert.equal(asked.length, 2, "nothing fetched twice");
});
