/**
 * The mount's persistent chunk store on its own: chunks survive a reopen and are shared by two
 * stores on one folder; the LRU bound holds after every batch (and evicts the least recently
 * used); a damaged chunk file is a miss and is removed, also when read ahead; a writer killed mid-write leaves nothing
 * that is served or counted.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { test } from "node:test";
import type Database from "better-sqlite3";
import { hashBytes } from "../../src/chunking/hash.js";
import { ChunkStore } from "../../src/mount/chunk-store.js";
import type { ChunkRef } from "../../src/wire/messages.js";
import { tempDir } from "../helpers/context.js";
import { pseudoRandomBytes } from "../helpers/tree.js";

const CHUNK = 64 * 1024;

function chunk(seed: string, size = CHUNK): { ref: ChunkRef; bytes: Buffer } {
  const bytes = pseudoRandomBytes(size, seed);
  return { ref: { offset: 0, size, hash: hashBytes(bytes) }, bytes };
}

/**
 * Bytes of chunk files (and files being written) in the store's folder. A temp file renamed
 * between the listing and its stat is missed: a bound that held while listing the other names.
 */
async function chunkFileBytes(folder: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(folder)) {
    if (!/^[0-9a-f]{2}$/.test(name)) continue;
    for (const file of await readdir(join(folder, name)))
      total += (await stat(join(folder, name, file)).catch(() => ({ size: 0 }))).size; // renamed meanwhile: counted under its new name
  }
  return total;
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
  assert.deepEqual(reopened.stats(), { chunks: 1, bytes: CHUNK, capacity: 1 << 20 });
  assert.equal(reopened.read(chunk("never written").ref), undefined);
  await reopened.close();
  assert.equal((await stat(folder)).mode & 0o777, 0o700);
});

test("the bound holds after every batch, and the least recently used chunk goes first", async (t) => {
  const folder = await tempDir(t, "chunk-store-lru");
  const capacity = 4 * CHUNK;
  const chunks = Array.from({ length: 12 }, (_, i) => chunk(`lru ${i}`));
  for (const [i, { ref, bytes }] of chunks.entries()) {
    const store = ChunkStore.open(folder, capacity);
    // Chunk 0 is read before every write: always the most recently used, never evicted.
    if (i > 0) assert.ok(store.read(chunks[0]?.ref as ChunkRef), `chunk 0 still held before chunk ${i}`);
    store.write(ref, bytes);
    await store.close();
    assert.ok((await chunkFileBytes(folder)) <= capacity, `bound after chunk ${i}`);
  }
  const store = ChunkStore.open(folder, capacity);
  const held = chunks.map(({ ref }) => store.read(ref) !== undefined);
  assert.deepEqual(held, [true, ...Array(8).fill(false), true, true, true]);
  assert.deepEqual(store.stats(), { chunks: 4, bytes: capacity, capacity });
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
      assert.ok((await chunkFileBytes(folder)) <= capacity, `bound after ${i + 1} chunks`);
    }
  }
  await Promise.all(stores.map((store) => store.close()));
  assert.ok((await chunkFileBytes(folder)) <= capacity);
  const reopened = ChunkStore.open(folder, capacity);
  assert.equal(reopened.stats().bytes, await chunkFileBytes(folder), "the rows count the files");
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
  assert.equal(await chunkFileBytes(folder), 8 * CHUNK);
  const smaller = ChunkStore.open(folder, 3 * CHUNK);
  assert.equal(await chunkFileBytes(folder), 3 * CHUNK);
  await smaller.close();
});

test("a damaged chunk file is a miss, removed, never served", async (t) => {
  const folder = await tempDir(t, "chunk-store-damaged");
  const { ref, bytes } = chunk("damaged");
  const store = ChunkStore.open(folder, 1 << 20);
  store.write(ref, bytes);
  await store.close();
  const key = ref.hash.toString("hex");
  const path = join(folder, key.slice(0, 2), key);
  const damaged = Buffer.from(await readFile(path));
  damaged[1000] = (damaged[1000] ?? 0) ^ 1;
  await writeFile(path, damaged);
  const reopened = ChunkStore.open(folder, 1 << 20);
  assert.equal(reopened.read(ref), undefined);
  await assert.rejects(stat(path), { code: "ENOENT" });
  assert.equal(reopened.stats().chunks, 0);
  reopened.write(ref, bytes); // fetched again, kept again
  await reopened.close();
  assert.ok((await readFile(path)).equals(bytes));
});

test("chunks read ahead are handed over verified; a damaged one is a miss, removed", async (t) => {
  const folder = await tempDir(t, "chunk-store-preload");
  const good = chunk("preload good");
  const bad = chunk("preload bad");
  const store = ChunkStore.open(folder, 1 << 20);
  store.write(good.ref, good.bytes);
  store.write(bad.ref, bad.bytes);
  await store.close();
  const badKey = bad.ref.hash.toString("hex");
  const badPath = join(folder, badKey.slice(0, 2), badKey);
  const damaged = Buffer.from(await readFile(badPath));
  damaged[7] = (damaged[7] ?? 0) ^ 1;
  await writeFile(badPath, damaged);
  const reopened = ChunkStore.open(folder, 1 << 20);
  assert.ok(reopened.holds(good.ref) && reopened.holds(bad.ref), "both rows are there");
  assert.equal(reopened.holds(chunk("never written").ref), false);
  assert.equal(reopened.preloaded(good.ref), undefined, "nothing before preload()");
  reopened.preload(good.ref);
  reopened.preload(bad.ref);
  assert.ok((await reopened.preloaded(good.ref))?.equals(good.bytes));
  assert.equal(await reopened.preloaded(bad.ref), undefined, "a damaged file is never handed over");
  await assert.rejects(stat(badPath), { code: "ENOENT" });
  assert.equal(reopened.stats().chunks, 1);
  await reopened.close();
});

test("a chunk whose writer was killed mid-write is removed at the next open", async (t) => {
  const folder = await tempDir(t, "chunk-store-abandoned");
  await ChunkStore.open(folder, 1 << 20).close();
  const { ref, bytes } = chunk("abandoned");
  const key = ref.hash.toString("hex");
  const dead = spawnSync("true").pid; // a process that has ended: its pid is free
  // What a writer killed between its row and its rename leaves: a row it owns and a temp file.
  const db = new (createRequire(import.meta.url)("better-sqlite3"))(
    join(folder, "chunks.db"),
  ) as Database.Database;
  db.prepare("INSERT INTO chunks (hash, size, used, owner) VALUES (?, ?, 0, ?)").run(ref.hash, CHUNK, dead);
  db.close();
  const temp = join(folder, key.slice(0, 2), `${key}.${dead}.tmp`);
  await mkdir(join(folder, key.slice(0, 2)), { recursive: true });
  await writeFile(temp, bytes.subarray(0, 1000));
  const store = ChunkStore.open(folder, 1 << 20);
  assert.deepEqual(store.stats(), { chunks: 0, bytes: 0, capacity: 1 << 20 });
  await assert.rejects(stat(temp), { code: "ENOENT" });
  assert.equal(store.read(ref), undefined);
  await store.close();
});
