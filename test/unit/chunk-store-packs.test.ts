/**
 * The chunk store's packs: chunks written together lie back to back and are read back with one
 * read per run; eviction punches an evicted chunk's range and removes a pack left empty (and
 * without hole punching, a portable system's, keeps ranges until their pack empties); the queue
 * of chunks waiting for the disk is bounded; two processes write one folder, and one killed
 * mid-write leaves nothing served or counted.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { hashBytes } from "../../src/chunking/hash.js";
import { ChunkStore } from "../../src/mount/chunk-store.js";
import { PackFiles } from "../../src/mount/pack-files.js";
import { PRELOAD_READ_BYTES } from "../../src/mount/pack-preloads.js";
import { WAITING_BYTES } from "../../src/mount/pack-writer.js";
import { StoredChunk } from "../../src/mount/stored-chunk.js";
import { platformIo } from "../../src/platform/io.js";
import type { ChunkRef } from "../../src/wire/messages.js";
import { allocatedBytes, chunkBytes, chunkPlaces, openRows, packFiles } from "../helpers/chunk-packs.js";
import { tempDir, waitFor } from "../helpers/context.js";
import { pseudoRandomBytes } from "../helpers/tree.js";

const CHUNK = 64 * 1024;

function chunk(seed: string, size = CHUNK): { ref: ChunkRef; bytes: Buffer } {
  const bytes = pseudoRandomBytes(size, seed);
  return { ref: { offset: 0, size, hash: hashBytes(bytes) }, bytes };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

test("chunks written together lie back to back and are read ahead with one read per run (no locks)", async (t) => {
  const folder = await tempDir(t, "chunk-packs-runs");
  const perRun = PRELOAD_READ_BYTES / CHUNK;
  const chunks = Array.from({ length: perRun + 3 }, (_, i) => chunk(`run ${i}`));
  const store = ChunkStore.open(folder, 1 << 30);
  for (const { ref, bytes } of chunks) store.write(ref, bytes);
  await store.close();
  const places = chunkPlaces(folder);
  assert.deepEqual(
    places.map((place) => place.position),
    chunks.map((_, i) => i * CHUNK),
    "one pack, in the order written",
  );
  // Without locks the bytes come over, views of one buffer per read.
  const reopened = ChunkStore.open(folder, 1 << 30, { locks: false });
  for (const { ref } of chunks) reopened.preload(ref);
  const read = await Promise.all(chunks.map(({ ref }) => reopened.preloaded(ref)));
  for (const [i, bytes] of read.entries()) {
    assert.ok(Buffer.isBuffer(bytes) && bytes.equals(chunks[i]?.bytes ?? Buffer.alloc(0)), `chunk ${i}`);
  }
  const slabs = read.map((bytes) => (Buffer.isBuffer(bytes) ? bytes.buffer : undefined));
  assert.equal(new Set(slabs).size, 2, "two reads: one of PRELOAD_READ_BYTES, one of the rest");
  assert.equal(slabs[0], slabs[perRun - 1]);
  assert.notEqual(slabs[0], slabs[perRun]);
  await reopened.close();
});

test("chunks read ahead are handed over where they lie; another store's eviction waits for the reader", async (t) => {
  const folder = await tempDir(t, "chunk-packs-held");
  const chunks = Array.from({ length: 8 }, (_, i) => chunk(`held ${i}`));
  const writing = ChunkStore.open(folder, 1 << 30);
  for (const { ref, bytes } of chunks) writing.write(ref, bytes);
  await writing.close();
  const reading = ChunkStore.open(folder, 1 << 30);
  for (const { ref } of chunks) reading.preload(ref);
  const read = await Promise.all(chunks.map(({ ref }) => reading.preloaded(ref)));
  assert.ok(
    read.every((held) => held instanceof StoredChunk && held.held),
    "verified where they lie",
  );
  // Another store on the folder (as another mount process: flock is per open file) with a bound of
  // one chunk evicts all but one as it opens. Checked in the same turn: nothing lets go meanwhile.
  const evicting = ChunkStore.open(folder, CHUNK);
  assert.equal(evicting.stats().chunks, 1, "the rows are gone");
  assert.equal(evicting.stats().unpunched, 7 * CHUNK, "their ranges wait: the reader holds the pack");
  for (const [i, held] of read.entries()) {
    assert.ok(held instanceof StoredChunk && held.held, `chunk ${i} still vouched for`);
    assert.ok(chunkBytes(held)?.equals(chunks[i]?.bytes ?? Buffer.alloc(0)), `chunk ${i}'s bytes intact`);
  }
  await evicting.close();
  await reading.close(); // lets go of the pack, and punches what waited
  assert.ok(
    read.every((held) => held instanceof StoredChunk && !held.held),
    "no longer vouched for",
  );
  assert.ok((await allocatedBytes(folder)) <= CHUNK, "the evicted ranges punched once the reader let go");
  const after = ChunkStore.open(folder, CHUNK);
  assert.equal(after.stats().unpunched, 0, "nothing left waiting");
  await after.close();
});

test("a pack with ranges waiting is let go by its reader within a sweep, its chunks then read again", async (t) => {
  const folder = await tempDir(t, "chunk-packs-let-go");
  const chunks = Array.from({ length: 4 }, (_, i) => chunk(`let go ${i}`));
  const writing = ChunkStore.open(folder, 1 << 30);
  for (const { ref, bytes } of chunks) writing.write(ref, bytes);
  await writing.close();
  const reading = ChunkStore.open(folder, 1 << 30, { lockIdleMs: 10 * 60_000 });
  for (const { ref } of chunks) reading.preload(ref);
  const read = await Promise.all(chunks.map(({ ref }) => reading.preloaded(ref)));
  const evicting = ChunkStore.open(folder, CHUNK);
  assert.equal(evicting.stats().unpunched, 3 * CHUNK);
  await evicting.close();
  // The reader's sweep (every second) sees the waiting ranges and closes the pack: punched.
  await waitFor(async () => (await allocatedBytes(folder)) <= CHUNK, {
    what: "the punch",
    timeoutMs: 10_000,
  });
  assert.ok(
    read.every((held) => held instanceof StoredChunk && !held.held),
    "no longer vouched for",
  );
  const [place] = chunkPlaces(folder);
  const kept = chunks.find(({ ref }) => place !== undefined && ref.hash.equals(place.hash));
  assert.ok(kept !== undefined, "one chunk is still held");
  reading.preload(kept.ref);
  assert.ok(chunkBytes(await reading.preloaded(kept.ref))?.equals(kept.bytes), "read again, verified");
  await reading.close();
});

/** A store of 32 chunks (packs of 4) filled, then every chunk read ahead by `reading`: all packs locked. */
async function filledAndRead(folder: string, seed: string, reading: (capacity: number) => ChunkStore) {
  const capacity = 32 * CHUNK;
  const chunks = Array.from({ length: 32 }, (_, i) => chunk(`${seed} ${i}`));
  const writing = ChunkStore.open(folder, capacity);
  for (const { ref, bytes } of chunks) writing.write(ref, bytes);
  await writing.close();
  const reader = reading(capacity);
  for (const { ref } of chunks) reader.preload(ref);
  const read = await Promise.all(chunks.map(({ ref }) => reader.preloaded(ref)));
  assert.ok(
    read.every((held) => held instanceof StoredChunk && held.held),
    "read ahead where they lie",
  );
  return { capacity, chunks, reader, read: read as StoredChunk[] };
}

test("a chunk evicted from a pack this process reads is punched at once: the process lets go of that pack", async (t) => {
  const folder = await tempDir(t, "chunk-packs-own-lock");
  const { capacity, chunks, reader, read } = await filledAndRead(folder, "own lock", (capacity) =>
    ChunkStore.open(folder, capacity, { lockIdleMs: 10 * 60_000 }),
  );
  const added = chunk("own lock added");
  reader.write(added.ref, added.bytes);
  await waitFor(() => reader.holds(added.ref), { what: "the added chunk written", intervalMs: 1 });
  assert.equal(reader.stats().unpunched, 0, "nothing waits for a sweep");
  assert.ok((await allocatedBytes(folder)) <= capacity, "within the bound at once");
  const evicted = chunks.findIndex(({ ref }) => !reader.holds(ref));
  const pack = read[evicted]?.at.pack;
  assert.ok(pack !== undefined, "a chunk was evicted");
  for (const held of read) {
    if (held.at.pack === pack)
      assert.ok(!held.held, "its pack was let go: its chunks are no longer vouched for");
    else assert.ok(held.held, "the other packs are still locked");
  }
  await reader.close();
});

test("ranges waiting for another reader count against the bound: nothing more is kept until they are punched", async (t) => {
  const folder = await tempDir(t, "chunk-packs-waiting-bound");
  // Another mount process reading the packs (flock is per open file, so another store will do).
  const { capacity, reader } = await filledAndRead(folder, "waiting bound", () =>
    ChunkStore.open(folder, 1 << 30, { lockIdleMs: 10 * 60_000 }),
  );
  const added = chunk("waiting bound added");
  const full = ChunkStore.open(folder, capacity);
  full.write(added.ref, added.bytes);
  await full.close();
  const check = ChunkStore.open(folder, 1 << 30);
  assert.equal(check.holds(added.ref), false, "not kept: the evicted range still waits");
  assert.deepEqual(check.stats(), { chunks: 31, bytes: 31 * CHUNK, unpunched: CHUNK, capacity: 1 << 30 });
  await check.close();
  assert.ok((await allocatedBytes(folder)) <= capacity, "within the bound meanwhile");

  await reader.close(); // lets go of the packs, and punches what waited
  const again = ChunkStore.open(folder, capacity);
  again.write(added.ref, added.bytes);
  await again.close();
  const after = ChunkStore.open(folder, 1 << 30);
  assert.ok(after.holds(added.ref), "kept once the range was punched");
  assert.equal(after.stats().unpunched, 0);
  await after.close();
  assert.ok((await allocatedBytes(folder)) <= capacity);
});

test("an idle pack is closed, and what was verified under its lock is no longer vouched for", async (t) => {
  const folder = await tempDir(t, "chunk-packs-idle");
  const packs = new PackFiles(folder, () => true, platformIo.lockFile);
  packs.create(1);
  const generation = packs.lockForReading(1);
  assert.ok(generation !== undefined);
  assert.ok(packs.heldFd(1, generation) !== undefined);
  packs.closeIdle(Date.now() - 60_000);
  assert.ok(packs.heldFd(1, generation) !== undefined, "read a minute ago: still locked");
  packs.closeIdle(Date.now() + 1);
  assert.equal(packs.heldFd(1, generation), undefined, "idle: closed, its lock let go");
  const again = packs.lockForReading(1);
  assert.ok(again !== undefined && again !== generation, "a new generation");
  assert.equal(
    packs.punchEvicted(1, [{ pack: 1, position: 0, size: 4096 }]),
    "busy",
    "this process reads it",
  );
  packs.close();
  assert.equal(packs.punchEvicted(1, [{ pack: 1, position: 0, size: 4096 }]), "punched");
});

/**
 * Waits until the clock is past every chunk's last use: a store makes the uses it writes strictly
 * increasing, ahead of the clock by a millisecond a chunk, and a use another store records must
 * come after them to order after them.
 */
async function clockPastUses(folder: string): Promise<void> {
  const db = openRows(folder);
  const { latest } = db.prepare("SELECT max(used) AS latest FROM chunks").get() as { latest: number };
  db.close();
  await waitFor(() => Date.now() > latest, { what: "the clock", intervalMs: 1 });
}

/**
 * Fills a store of 16 chunks (packs of 2) with chunks 0-15, makes chunk 0 the most recently used,
 * then writes chunk 16: chunk 1 goes, leaving chunk 0 alone in its pack.
 */
async function evictBesideLiveChunk(folder: string, punchHole?: () => boolean) {
  const capacity = 16 * CHUNK;
  const options = punchHole === undefined ? {} : { punchHole };
  const chunks = Array.from({ length: 17 }, (_, i) => chunk(`evict ${i}`));
  const store = ChunkStore.open(folder, capacity, options);
  for (const { ref, bytes } of chunks.slice(0, 16)) store.write(ref, bytes);
  await store.close();
  await clockPastUses(folder);
  const reading = ChunkStore.open(folder, capacity, options);
  assert.ok(reading.read(chunks[0]?.ref as ChunkRef));
  await reading.close();
  const packsBefore = await packFiles(folder);
  const writing = ChunkStore.open(folder, capacity, options);
  for (const { ref, bytes } of chunks.slice(16)) writing.write(ref, bytes);
  await writing.close();
  const first = packsBefore[0];
  assert.ok(first !== undefined);
  return { chunks, capacity, packsBefore, first, options };
}

test("an evicted chunk's range is punched, and a pack left empty is removed", async (t) => {
  const folder = await tempDir(t, "chunk-packs-evict");
  const { chunks, capacity, packsBefore, first, options } = await evictBesideLiveChunk(folder);
  assert.equal(packsBefore.length, 8, "packs of an eighth of the bound");
  const packs = await packFiles(folder);
  assert.equal(packs.find((pack) => pack.id === first.id)?.allocated, CHUNK, "chunk 1's blocks freed");
  assert.ok((await allocatedBytes(folder)) <= capacity);
  // Chunks 2-9 go: their four packs empty and are removed; chunk 0's stays.
  const more = Array.from({ length: 8 }, (_, i) => chunk(`evict more ${i}`));
  const store = ChunkStore.open(folder, capacity, options);
  for (const { ref, bytes } of more) store.write(ref, bytes);
  await store.close();
  const ids = (await packFiles(folder)).map((pack) => pack.id);
  assert.ok(ids.includes(first.id), "the pack of chunk 0 stays");
  for (const gone of packsBefore.slice(1, 5)) assert.ok(!ids.includes(gone.id), `pack ${gone.id} removed`);
  const reopened = ChunkStore.open(folder, capacity, options);
  assert.ok(reopened.read(chunks[0]?.ref as ChunkRef)?.equals(chunks[0]?.bytes ?? Buffer.alloc(0)));
  assert.equal(reopened.read(chunks[1]?.ref as ChunkRef), undefined);
  await reopened.close();
});

test("without hole punching, evicted ranges stay allocated until their pack empties", async (t) => {
  const folder = await tempDir(t, "chunk-packs-portable");
  const { capacity, packsBefore, first } = await evictBesideLiveChunk(folder, () => false);
  const packs = await packFiles(folder);
  assert.equal(packs.find((pack) => pack.id === first.id)?.allocated, 2 * CHUNK, "chunk 1's range kept");
  const allocated = await allocatedBytes(folder);
  assert.ok(allocated > capacity && allocated <= capacity + capacity / 8, `${allocated} bytes on disk`);
  assert.equal(packs.length, packsBefore.length + 1, "no pack emptied yet");
});

test("chunks waiting for the disk are bounded: beyond that they are not kept", async (t) => {
  const folder = await tempDir(t, "chunk-packs-waiting");
  const store = ChunkStore.open(folder, 1 << 30);
  const bytes = randomBytes(1 << 20);
  const offered = WAITING_BYTES / bytes.length + 16;
  // The store trusts what it is given (the fetcher verified it): distinct hashes, one buffer.
  for (let i = 0; i < offered; i++)
    store.write({ offset: 0, size: bytes.length, hash: randomBytes(32) }, bytes);
  await store.close();
  const reopened = ChunkStore.open(folder, 1 << 30);
  assert.equal(reopened.stats().chunks, WAITING_BYTES / bytes.length);
  await reopened.close();
});

/** A process writing chunks into the store at `folder` until killed or `count` are written. */
function writerProcess(folder: string, seed: string, count: number, capacity: number) {
  const module = (path: string) => fileURLToPath(new URL(path, import.meta.url));
  const script = `
    import { ChunkStore } from ${JSON.stringify(module("../../src/mount/chunk-store.js"))};
    import { hashBytes } from ${JSON.stringify(module("../../src/chunking/hash.js"))};
    import { createHash } from "node:crypto";
    const store = ChunkStore.open(${JSON.stringify(folder)}, ${capacity});
    for (let i = 0; i < ${count}; i++) {
      const bytes = Buffer.alloc(${CHUNK});
      for (let at = 0; at < bytes.length; at += 32) createHash("sha256").update(${JSON.stringify(seed)} + i + ":" + at).digest().copy(bytes, at);
      store.write({ offset: 0, size: bytes.length, hash: hashBytes(bytes) }, bytes);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await store.close();
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: "inherit" });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited };
}

/** Every live chunk of the folder reads back verified, and no reservation is left. */
async function assertWhole(folder: string, capacity: number): Promise<void> {
  const store = ChunkStore.open(folder, capacity);
  try {
    for (const place of chunkPlaces(folder)) {
      const ref = { offset: 0, size: place.size, hash: place.hash };
      assert.ok(store.read(ref) !== undefined, `chunk at ${place.position} of ${place.path} verifies`);
    }
    const db = openRows(folder);
    const { reserved } = db
      .prepare("SELECT count(*) AS reserved FROM chunks WHERE owner IS NOT NULL")
      .get() as {
      reserved: number;
    };
    db.close();
    assert.equal(reserved, 0, "no reservation left");
  } finally {
    await store.close();
  }
}

test("two processes write one folder at once within the bound", async (t) => {
  const folder = await tempDir(t, "chunk-packs-two");
  const capacity = 24 * CHUNK;
  const child = writerProcess(folder, "child", 40, capacity);
  const store = ChunkStore.open(folder, capacity);
  for (let i = 0; i < 40; i++) {
    const { ref, bytes } = chunk(`parent ${i}`);
    store.write(ref, bytes);
    await turn();
    // The rows, read in one transaction; the packs' blocks, stat by stat while the other process
    // evicts and writes, are compared with the bound once both are done.
    assert.ok(store.stats().bytes <= capacity, `bound after ${i + 1} chunks`);
  }
  await store.close();
  assert.equal(await child.exited, 0);
  assert.ok((await allocatedBytes(folder)) <= capacity);
  const places = chunkPlaces(folder);
  assert.ok(places.length > 0 && places.length <= 24);
  await assertWhole(folder, capacity);
});

test("a writer killed mid-write leaves nothing served or counted", async (t) => {
  const folder = await tempDir(t, "chunk-packs-killed");
  const capacity = 1 << 30;
  const child = writerProcess(folder, "killed", 1_000_000, capacity);
  await waitFor(async () => (await packFiles(folder)).length > 0 && chunkPlaces(folder).length >= 20, {
    what: "the child's chunks",
    timeoutMs: 30_000,
  });
  child.child.kill("SIGKILL");
  await child.exited;
  await assertWhole(folder, capacity);
  const store = ChunkStore.open(folder, capacity);
  const { chunks, bytes } = store.stats();
  assert.equal(chunks, chunkPlaces(folder).length, "only live chunks are counted");
  assert.ok((await allocatedBytes(folder)) <= bytes, "nothing allocated beyond what is counted");
  await store.close();
});
