/** The host's cache of small files' bytes between a manifest and the GET_CHUNKS that follows. */
import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { defaultChunker, FixedChunker } from "../../src/chunking/chunker.js";
import { hashBytes } from "../../src/chunking/hash.js";
import { chunkBytes, chunkFile, collectChunks } from "../../src/chunking/manifest.js";
import { type FileIdentity, RecentChunks } from "../../src/serve/recent-chunks.js";
import { seededRandom } from "../helpers/seed.js";

/** The identity of the one "file" these tests read (see OpenedFile.identity). */
const FILE: FileIdentity = { dev: 1, ino: 2, size: 3, mtimeMs: 4.5 };

/** Reads a "file" of `size` bytes of `fill` into the cache, as the host's manifest does. */
function put(recent: RecentChunks, fill: number, size: number): Buffer {
  const data = recent.reserve(size);
  data.fill(fill);
  const hash = hashBytes(data);
  recent.add(hash, FILE, data);
  return hash;
}

/** The chunk's bytes as the cache copies them out, or undefined where it does not hold them. */
function get(recent: RecentChunks, hash: Buffer, size: number, file = FILE): Buffer | undefined {
  const target = Buffer.alloc(size);
  return recent.copy(hash, file, target) ? target : undefined;
}

test("RecentChunks finds chunks by hash and forgets the oldest as its ring wraps", () => {
  const recent = RecentChunks.standalone(3500);
  const holds = (hash: Buffer, fill: number, size: number) =>
    assert.deepEqual(get(recent, hash, size), Buffer.alloc(size, fill));
  const a = put(recent, 1, 1000); // [0, 1000)
  const b = put(recent, 2, 1000); // [1000, 2000)
  const c = put(recent, 3, 1000); // [2000, 3000)
  const d = put(recent, 4, 400); // [3000, 3400)
  assert.equal(recent.bytes, 3400);
  holds(a, 1, 1000);

  const e = put(recent, 5, 1000); // no room at the end: wraps to [0, 1000), over a
  assert.equal(get(recent, a, 1000), undefined, "the oldest went first");
  holds(b, 2, 1000);
  holds(c, 3, 1000);
  holds(d, 4, 400);
  holds(e, 5, 1000);

  // Wraps to [0, 2600): b, c and d are older than e, so they go too, d though it is not overwritten.
  const f = put(recent, 6, 2600);
  for (const gone of [b, c, e]) assert.equal(get(recent, gone, 1000), undefined);
  assert.equal(get(recent, d, 400), undefined);
  holds(f, 6, 2600);

  const g = put(recent, 7, 500); // [2600, 3100)
  const h = put(recent, 8, 1000); // wraps to [0, 1000), over f
  assert.equal(get(recent, f, 2600), undefined);
  holds(g, 7, 500);
  holds(h, 8, 1000);
  assert.equal(recent.bytes, 1500);

  const large = recent.reserve(4000);
  assert.equal(large.length, 4000, "a file larger than the ring gets a buffer of its own");
  recent.add(hashBytes(large), FILE, large);
  assert.equal(recent.bytes, 1500, "and is not kept");
  holds(g, 7, 500);
  assert.equal(get(recent, g, 499), undefined, "a request of another size is not this chunk");
});

test("RecentChunks serves a chunk only for the file identity it was read from", () => {
  const recent = RecentChunks.standalone(3500);
  const hash = put(recent, 1, 1000);
  assert.deepEqual(get(recent, hash, 1000), Buffer.alloc(1000, 1));
  assert.equal(
    get(recent, hash, 1000, { ...FILE, mtimeMs: 4.6 }),
    undefined,
    "another mtime: another file's bytes",
  );
  assert.equal(get(recent, hash, 1000, { ...FILE, ino: 9 }), undefined, "another inode");
  assert.equal(get(recent, hash, 1000, { ...FILE, size: 7 }), undefined, "another size");
});

test("RecentChunks serves what another thread read, until that thread's ring moves past it", async () => {
  const memory = RecentChunks.allocate(3500, 2);
  const own = new RecentChunks(memory, 0);
  const mine = put(own, 9, 700);
  // The writer runs the compiled module, as the host's threads do.
  const module = new URL("../../src/serve/recent-chunks.js", import.meta.url).href;
  const writer = new Worker(
    `const { parentPort, workerData } = require("node:worker_threads");
    import(workerData.module).then(({ RecentChunks }) => {
      const recent = new RecentChunks(workerData.memory, 1);
      const file = { dev: 1, ino: 2, size: 3, mtimeMs: 4.5 };
      parentPort.on("message", ({ fill, size, hash }) => {
        const data = recent.reserve(size);
        data.fill(fill);
        recent.add(Buffer.from(hash), file, data);
        parentPort.postMessage("added");
      });
      parentPort.postMessage("ready");
    });`,
    { eval: true, workerData: { memory, module } },
  );
  const replies: string[] = [];
  let wake: (() => void) | undefined;
  writer.on("message", (reply: string) => {
    replies.push(reply);
    wake?.();
  });
  const next = async (): Promise<string | undefined> => {
    while (replies.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    return replies.shift();
  };
  try {
    assert.equal(await next(), "ready");
    const theirs = hashBytes(Buffer.alloc(2000, 5));
    writer.postMessage({ fill: 5, size: 2000, hash: theirs });
    assert.equal(await next(), "added");
    assert.deepEqual(get(own, theirs, 2000), Buffer.alloc(2000, 5), "read by the other thread");
    assert.deepEqual(get(own, mine, 700), Buffer.alloc(700, 9));
    writer.postMessage({ fill: 6, size: 3000, hash: hashBytes(Buffer.alloc(3000, 6)) });
    assert.equal(await next(), "added");
    assert.equal(get(own, theirs, 2000), undefined, "overwritten by its writer: forgotten");
    assert.deepEqual(get(own, mine, 700), Buffer.alloc(700, 9), "each thread writes its own ring");
  } finally {
    await writer.terminate();
  }
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
