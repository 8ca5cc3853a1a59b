/**
 * The mount's persistent chunk store on its own: chunks survive a reopen and are shared by two
 * stores on one folder; the LRU bound holds on disk after every batch (and evicts the least
 * recently used); damaged bytes in a pack are a miss, their row dropped, also when read ahead;
 * what a writer killed mid-write leaves is neither served nor counted. Packs: see
 * chunk-store-packs.test.ts.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { open, stat, symlink, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { hashBytes } from "../../src/chunking/hash.js";
import { ChunkStore } from "../../src/mount/chunk-store.js";
import type { ChunkRef } from "../../src/wire/messages.js";
import { allocatedBytes, chunkBytes, chunkPlaces, openRows, packFiles } from "../helpers/chunk-packs.js";
import { tempDir } from "../helpers/context.js";
import { pseudoRandomBytes } from "../helpers/tree.js";

const CHUNK = 64 * 1024;

function chunk(seed: string, size = CHUNK): { ref: ChunkRef; bytes: Buffer } {
  const bytes = pseudoRandomBytes(size, seed);
  return { ref: { offset: 0, size, hash: hashBytes(bytes) }, bytes };
}

/** Flips one bit of the chunk `hash` where it lies in its pack. */
async function damage(folder: string, hash: Buffer, at: number): Promise<void> {
  const place = chunkPlaces(folder).find((row) => row.hash.equals(hash));
  assert.ok(place !== undefined, "the chunk has a row");
  const file = await open(place.path, "r+");
  try {
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, place.position + at);
    byte[0] = (byte[0] ?? 0) ^ 1;
    await file.write(byte, 0, 1, place.position + at);
  } finally {
    await file.close();
  }
}

test("chunks survive a reopen and are shared by two stores on one folder", async (t) => {
  const folder = await tempDir(t, "chunk-store");
  const a = chunk("a");
  const first = ChunkStore.open(folder, 1 << 20);
  first.write(a.ref, a.bytes);
  const second = ChunkStore.open(folder, 1 << 20);
  await first.close();
  assert.ok(second.read(a.ref)?.equals(a.bytes), "the other store reads what the first wrote");
  await second.close();
  const reopened = ChunkStore.open(folder, 1 << 20);
  assert.ok(reopened.read(a.ref)?.equals(a.bytes));
  assert.deepEqual(reopened.stats(), { chunks: 1, bytes: CHUNK, unpunched: 0, capacity: 1 << 20 });
  assert.equal(reopened.read(chunk("never written").ref), undefined);
  await reopened.close();
  assert.equal((await stat(folder)).mode & 0o777, 0o700);
});

test("the bound holds on disk after every batch, and the least recently used chunk goes first", async (t) => {
  const folder = await tempDir(t, "chunk-store-lru");
  const capacity = 4 * CHUNK;
  const chunks = Array.from({ length: 12 }, (_, i) => chunk(`lru ${i}`));
  for (const [i, { ref, bytes }] of chunks.entries()) {
    const store = ChunkStore.open(folder, capacity);
    // Chunk 0 is read before every write: always the most recently used, never evicted.
    if (i > 0) assert.ok(store.read(chunks[0]?.ref as ChunkRef), `chunk 0 still held before chunk ${i}`);
    store.write(ref, bytes);
    await store.close();
    assert.ok((await allocatedBytes(folder)) <= capacity, `bound after chunk ${i}`);
  }
  const store = ChunkStore.open(folder, capacity);
  const held = chunks.map(({ ref }) => store.read(ref) !== undefined);
  assert.deepEqual(held, [true, ...Array(8).fill(false), true, true, true]);
  assert.deepEqual(store.stats(), { chunks: 4, bytes: capacity, unpunched: 0, capacity });
  await store.close();
});

test("many chunks written at once by two stores never exceed the bound", async (t) => {
  const folder = await tempDir(t, "chunk-store-burst");
  const capacity = 10 * CHUNK;
  const stores = [ChunkStore.open(folder, capacity), ChunkStore.open(folder, capacity)];
  for (let i = 0; i < 40; i++) {
    const { ref, bytes } = chunk(`burst ${i}`, CHUNK - i);
    stores[i % 2]?.write(ref, bytes);
    if (i % 5 === 4) {
      await new Promise((resolve) => setImmediate(resolve));
      assert.ok((await allocatedBytes(folder)) <= capacity, `bound after ${i + 1} chunks`);
    }
  }
  await Promise.all(stores.map((store) => store.close()));
  const reopened = ChunkStore.open(folder, capacity);
  const { bytes } = reopened.stats();
  assert.ok(bytes <= capacity && bytes > capacity - CHUNK, `the rows count ${bytes} bytes`);
  assert.ok((await allocatedBytes(folder)) <= bytes, "the packs take no more than the rows count");
  await reopened.close();
});

test("a smaller bound than last time evicts at open", async (t) => {
  const folder = await tempDir(t, "chunk-store-shrink");
  const store = ChunkStore.open(folder, 8 * CHUNK);
  for (let i = 0; i < 8; i++) {
    const { ref, bytes } = chunk(`shrink ${i}`);
    store.write(ref, bytes);
  }
  await store.close();
  assert.equal(await allocatedBytes(folder), 8 * CHUNK);
  const smaller = ChunkStore.open(folder, 3 * CHUNK);
  assert.ok((await allocatedBytes(folder)) <= 3 * CHUNK);
  assert.equal(smaller.stats().chunks, 3);
  await smaller.close();
});

test("damaged bytes in a pack are a miss, their row dropped, never served", async (t) => {
  const folder = await tempDir(t, "chunk-store-damaged");
  const { ref, bytes } = chunk("damaged");
  const neighbour = chunk("damaged's neighbour");
  const store = ChunkStore.open(folder, 1 << 20);
  store.write(ref, bytes);
  store.write(neighbour.ref, neighbour.bytes);
  await store.close();
  await damage(folder, ref.hash, 1000);
  const reopened = ChunkStore.open(folder, 1 << 20);
  assert.equal(reopened.read(ref), undefined);
  assert.ok(reopened.read(neighbour.ref)?.equals(neighbour.bytes), "the chunk beside it is served");
  assert.equal(reopened.stats().chunks, 1);
  assert.equal(reopened.holds(ref), false);
  reopened.write(ref, bytes); // fetched again, kept again
  await reopened.close();
  const again = ChunkStore.open(folder, 1 << 20);
  assert.ok(again.read(ref)?.equals(bytes));
  await again.close();
});

test("chunks read ahead are handed over verified; a damaged one is a miss, removed", async (t) => {
  const folder = await tempDir(t, "chunk-store-preload");
  const good = chunk("preload good");
  const bad = chunk("preload bad");
  const store = ChunkStore.open(folder, 1 << 20);
  store.write(good.ref, good.bytes);
  store.write(bad.ref, bad.bytes);
  await store.close();
  await damage(folder, bad.ref.hash, 7);
  const reopened = ChunkStore.open(folder, 1 << 20);
  assert.ok(reopened.holds(good.ref) && reopened.holds(bad.ref), "both rows are there");
  assert.equal(reopened.holds(chunk("never written").ref), false);
  assert.equal(reopened.preloaded(good.ref), undefined, "nothing before preload()");
  reopened.preload(good.ref);
  reopened.preload(bad.ref);
  assert.ok(chunkBytes(await reopened.preloaded(good.ref))?.equals(good.bytes));
  assert.equal(await reopened.preloaded(bad.ref), undefined, "damaged bytes are never handed over");
  assert.equal(reopened.stats().chunks, 1);
  assert.equal(reopened.holds(bad.ref), false);
  await reopened.close();
});

test("a pack replaced by a symlink is not followed", async (t) => {
  const folder = await tempDir(t, "chunk-store-symlink");
  const { ref, bytes } = chunk("symlinked");
  const store = ChunkStore.open(folder, 1 << 20);
  store.write(ref, bytes);
  await store.close();
  const [pack] = await packFiles(folder);
  assert.ok(pack !== undefined);
  const elsewhere = join(folder, "elsewhere");
  await writeFile(elsewhere, bytes); // the right bytes at position 0, where the row says
  await unlink(pack.path);
  await symlink(elsewhere, pack.path);
  const reopened = ChunkStore.open(folder, 1 << 20);
  assert.equal(reopened.read(ref), undefined, "read through a symlink");
  await reopened.close();
});

test("what a writer killed mid-write left is removed at the next open", async (t) => {
  const folder = await tempDir(t, "chunk-store-abandoned");
  const kept = chunk("kept");
  const first = ChunkStore.open(folder, 1 << 20);
  first.write(kept.ref, kept.bytes);
  await first.close();
  const { ref, bytes } = chunk("abandoned");
  const dead = spawnSync("true").pid; // a process that has ended: its pid is free
  // What a writer killed between its row and its commit leaves: a pack it appended to, a
  // reservation it owns, and some of the bytes.
  const db = openRows(folder);
  const pack = Number(db.prepare("INSERT INTO packs (owner) VALUES (?)").run(dead).lastInsertRowid);
  db.prepare("INSERT INTO chunks (hash, pack, position, size, used, owner) VALUES (?, ?, 0, ?, 0, ?)").run(
    ref.hash,
    pack,
    CHUNK,
    dead,
  );
  db.close();
  await writeFile(join(folder, `${pack}.pack`), bytes.subarray(0, 5000));
  await writeFile(join(folder, "999999.pack"), bytes); // a pack whose row was never committed
  const store = ChunkStore.open(folder, 1 << 20);
  assert.deepEqual(store.stats(), { chunks: 1, bytes: CHUNK, unpunched: 0, capacity: 1 << 20 });
  assert.equal(store.read(ref), undefined);
  assert.ok(store.read(kept.ref)?.equals(kept.bytes));
  const packs = (await packFiles(folder)).map((file) => file.id);
  assert.ok(!packs.includes(pack) && !packs.includes(999999), `packs left: ${packs}`);
  await store.close();
});
