/**
 * Read-ahead batches fetched straight into the chunk store's pack (ChunkStore.reserveBatch): the
 * region's rows count toward the bound from the start and are served only once committed; an
 * abandoned batch leaves nothing counted or allocated; a batch the bound cannot take is refused
 * (the pool fetcher then uses a scratch file); a chunk held already keeps its first copy.
 */
import assert from "node:assert/strict";
import { writeSync } from "node:fs";
import { test } from "node:test";
import { hashBytes } from "../../src/chunking/hash.js";
import { ChunkStore } from "../../src/mount/chunk-store.js";
import type { ChunkRef } from "../../src/wire/messages.js";
import { allocatedBytes, chunkBytes, chunkPlaces, packFiles } from "../helpers/chunk-packs.js";
import { tempDir } from "../helpers/context.js";
import { pseudoRandomBytes } from "../helpers/tree.js";

const CHUNK = 64 * 1024;

function chunks(seed: string, count: number, size = CHUNK): Array<{ ref: ChunkRef; bytes: Buffer }> {
  return Array.from({ length: count }, (_, i) => {
    const bytes = pseudoRandomBytes(size - i, `${seed} ${i}`);
    return { ref: { offset: i * size, size: bytes.length, hash: hashBytes(bytes) }, bytes };
  });
}

test("a batch's chunks are counted when reserved, served once committed, handed over in order", async (t) => {
  const folder = await tempDir(t, "chunk-batch");
  const batchChunks = chunks("batch", 4);
  const store = ChunkStore.open(folder, 1 << 20);
  const batch = store.reserveBatch(batchChunks.map(({ ref }) => ref));
  assert.ok(batch !== undefined);
  assert.equal(store.stats().chunks, 4, "counted toward the bound while being written");
  assert.equal(store.holds(batchChunks[0]?.ref as ChunkRef), false, "not served before it is written");
  // What the stream pool does: each chunk at its place in the lent descriptor.
  for (const [i, { bytes }] of batchChunks.entries())
    writeSync(batch.fd, bytes, 0, bytes.length, batch.positions[i]);
  const handed = await batch.commit();
  assert.deepEqual(
    handed?.map((chunk) => hashBytes(chunkBytes(chunk) ?? Buffer.alloc(0)).toString("hex")),
    batchChunks.map(({ ref }) => ref.hash.toString("hex")),
  );
  assert.ok(batchChunks.every(({ ref }) => store.holds(ref)));
  store.write(batchChunks[0]?.ref as ChunkRef, batchChunks[0]?.bytes as Buffer); // what ChunkSource does next
  await store.close();
  const reopened = ChunkStore.open(folder, 1 << 20);
  for (const { ref, bytes } of batchChunks) assert.ok(reopened.read(ref)?.equals(bytes));
  assert.equal(reopened.stats().chunks, 4, "each chunk once");
  await reopened.close();
});

test("an abandoned batch leaves nothing counted or allocated", async (t) => {
  const folder = await tempDir(t, "chunk-batch-abandoned");
  const batchChunks = chunks("abandoned", 4);
  const store = ChunkStore.open(folder, 1 << 20);
  const batch = store.reserveBatch(batchChunks.map(({ ref }) => ref));
  assert.ok(batch !== undefined);
  for (const [i, { bytes }] of batchChunks.entries())
    writeSync(batch.fd, bytes, 0, bytes.length, batch.positions[i]);
  batch.abandon();
  assert.deepEqual(store.stats(), { chunks: 0, bytes: 0, unpunched: 0, capacity: 1 << 20 });
  assert.equal(await allocatedBytes(folder), 0, "its range punched");
  assert.equal(await batch.commit(), undefined, "settled once");
  await store.close();
  assert.deepEqual(await packFiles(folder), [], "the empty pack removed once sealed");
});

test("a batch larger than the bound is refused; a held chunk keeps its first copy", async (t) => {
  const folder = await tempDir(t, "chunk-batch-bound");
  const store = ChunkStore.open(folder, 3 * CHUNK);
  assert.equal(store.reserveBatch(chunks("too many", 4).map(({ ref }) => ref)), undefined);
  const [held, fresh] = chunks("held", 2);
  assert.ok(held !== undefined && fresh !== undefined);
  store.write(held.ref, held.bytes);
  await new Promise((resolve) => setImmediate(resolve));
  await store.close();
  const reopened = ChunkStore.open(folder, 3 * CHUNK);
  const batch = reopened.reserveBatch([held.ref, fresh.ref]);
  assert.ok(batch !== undefined);
  writeSync(batch.fd, held.bytes, 0, held.bytes.length, batch.positions[0]);
  writeSync(batch.fd, fresh.bytes, 0, fresh.bytes.length, batch.positions[1]);
  assert.ok(chunkBytes((await batch.commit())?.[0])?.equals(held.bytes), "handed over all the same");
  await reopened.close();
  assert.equal(chunkPlaces(folder).length, 2);
  assert.ok((await allocatedBytes(folder)) <= 2 * CHUNK, "the second copy's range punched");
});
