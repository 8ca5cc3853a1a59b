import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { defaultChunker } from "../../src/chunking/chunker.js";
import { collectChunks } from "../../src/chunking/manifest.js";
import { ChunkIndex } from "../../src/store/chunk-index.js";
import { fileChunks } from "../../src/store/file-chunks.js";
import type { ChunkRef } from "../../src/wire/messages.js";
import { onCleanup } from "../helpers/context.js";

const require = createRequire(import.meta.url);
const INDEX_MODULE = fileURLToPath(new URL("../../src/store/chunk-index.js", import.meta.url));

/** The listing `open` makes of the file at `path`, open for reading until the listing ends. */
async function* withFile<T, R>(
  path: string,
  open: (fd: number) => AsyncGenerator<T, R>,
): AsyncGenerator<T, R> {
  const fd = openSync(path, "r");
  try {
    return yield* open(fd);
  } finally {
    closeSync(fd);
  }
}

function chunks(count: number, size = 1000): ChunkRef[] {
  return Array.from({ length: count }, (_, i) => ({ offset: i * size, size, hash: randomBytes(32) }));
}

describe("ChunkIndex", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "teleport-index-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("finds a file only while its identity and chunker are unchanged", async () => {
    const index = ChunkIndex.open(join(dir, "lookup"));
    const path = join(dir, "lookup.bin");
    await writeFile(path, "some bytes");
    const stats = await stat(path, { bigint: true });
    const id = index.startFile(path, stats, "cdc-a");
    const refs = chunks(3);
    index.addChunks(refs.map((chunk) => [id, chunk] as const));
    assert.equal(index.lookupFile(path, stats, "cdc-a"), undefined, "not complete yet");
    index.finishFile(id, path, stats, { size: 10, chunkCount: 3, fileHash: Buffer.alloc(32, 1) });

    assert.equal(index.lookupFile(path, stats, "cdc-a")?.chunkCount, 3);
    assert.equal(index.lookupFile(path, stats, "cdc-b"), undefined, "another chunker's list");
    await writeFile(path, "other byte");
    assert.equal(index.lookupFile(path, await stat(path, { bigint: true }), "cdc-a"), undefined);
    assert.ok(index.hasChunkAt(id, 1000, refs[1]?.hash as Buffer));
    assert.ok(!index.hasChunkAt(id, 2000, refs[1]?.hash as Buffer));
    assert.equal(index.locate(refs[2]?.hash as Buffer)[0]?.offset, 2000);
    index.close();
  });

  it("keeps a file's chunk list while it is read, when another caller that hashed it too finishes", async () => {
    // Two clients of a host hash the same new file at once; a third lists it from the index.
    const index = ChunkIndex.open(join(dir, "twice"));
    const path = join(dir, "twice.bin");
    await writeFile(path, "hashed twice");
    const stats = await stat(path, { bigint: true });
    const refs = chunks(5);
    const digest = { size: 5000, chunkCount: 5, fileHash: Buffer.alloc(32, 7) };
    const late = index.startFile(path, stats, "cdc");
    index.startFile(join(dir, "another.bin"), stats, "cdc"); // so that the next id is not late's again
    const early = index.startFile(path, stats, "cdc");
    assert.notEqual(early, late);
    index.addChunks(refs.map((chunk) => [early, chunk] as const));
    index.finishFile(early, path, stats, digest);
    const known = index.lookupFile(path, stats, "cdc");
    assert.equal(known?.id, early);
    const reading = index.chunksOf(early, 2);
    const listed = [...(reading.next().value ?? [])];

    index.addChunks(refs.map((chunk) => [late, chunk] as const));
    index.finishFile(late, path, stats, digest);
    for (const batch of reading) listed.push(...batch);

    assert.equal(listed.length, 5, "every chunk listed");
    assert.equal(index.lookupFile(path, stats, "cdc")?.id, early);
    index.close();
  });

  it("indexes a file as fileChunks reads it, and lists it again from the index without reading", async () => {
    const index = ChunkIndex.open(join(dir, "file-chunks"));
    const chunker = defaultChunker();
    const path = join(dir, "file-chunks.bin");
    const content = randomBytes(300 * 1024);
    await writeFile(path, content);
    const read = await collectChunks(
      withFile(path, (fd) => fileChunks(fd, path, content.length, chunker, index)),
    );
    const stats = await stat(path, { bigint: true });
    const known = index.lookupFile(path, stats, chunker.id);
    assert.ok(known !== undefined, "recorded");
    assert.ok(known.fileHash?.equals(read.digest.fileHash), "recorded complete, with its file hash");
    assert.equal(known.chunkCount, read.chunks.length);
    assert.deepEqual([...index.chunksOf(known.id, 1024)].flat(), read.chunks);
    // Changed underneath: a new read, and the new content recorded in place of the old.
    await writeFile(path, randomBytes(40 * 1024));
    const again = await collectChunks(
      withFile(path, (fd) => fileChunks(fd, path, 40 * 1024, chunker, index)),
    );
    const now = index.lookupFile(path, await stat(path, { bigint: true }), chunker.id);
    assert.ok(now?.fileHash?.equals(again.digest.fileHash));
    assert.equal(index.locate(read.chunks[0]?.hash ?? Buffer.alloc(32)).length, 0, "the old rows are gone");
    index.close();
  });

  it("locates chunks in an index opened empty: its own, and another connection's written since", async (t) => {
    const home = join(dir, "cold");
    const index = ChunkIndex.open(home);
    const other = ChunkIndex.open(home);
    onCleanup(t, () => {
      index.close();
      other.close();
    });
    const stats = await stat(dir, { bigint: true });
    const [own, theirs] = [chunks(1), chunks(1)];
    assert.deepEqual(index.locate((own[0] as ChunkRef).hash), [], "nothing indexed yet");
    const id = index.startFile(join(dir, "own.bin"), stats, "cdc-a");
    index.addChunks(own.map((chunk) => [id, chunk] as const));
    assert.equal(index.locate((own[0] as ChunkRef).hash)[0]?.fileId, id);
    // Written by another connection after this one saw an empty index: found all the same.
    const otherId = other.startFile(join(dir, "theirs.bin"), stats, "cdc-a");
    other.addChunks(theirs.map((chunk) => [otherId, chunk] as const));
    assert.equal(index.locate((theirs[0] as ChunkRef).hash)[0]?.fileId, otherId);
  });

  it("finishFiles completes several files in one call", async () => {
    const index = ChunkIndex.open(join(dir, "finish-files"));
    const files = await Promise.all(
      ["a", "b"].map(async (name) => {
        const path = join(dir, `finish-${name}.bin`);
        await writeFile(path, name);
        const stats = await stat(path, { bigint: true });
        return { fileId: index.startFile(path, stats, "cdc-a"), path, stats };
      }),
    );
    const digest = { size: 1, chunkCount: 0, fileHash: Buffer.alloc(32, 7) };
    index.finishFiles(files.map((file) => ({ ...file, digest })));
    for (const { path, stats } of files)
      assert.ok(index.lookupFile(path, stats, "cdc-a")?.fileHash?.equals(digest.fileHash));
    index.close();
  });

  it("pages a long chunk list in order, one query per batch", async () => {
    const index = ChunkIndex.open(join(dir, "paging"));
    const path = join(dir, "paging.bin");
    await writeFile(path, "");
    const id = index.startFile(path, await stat(path, { bigint: true }), "cdc");
    const refs = chunks(2500);
    index.addChunks(refs.map((chunk) => [id, chunk] as const));
    const batches = [...index.chunksOf(id, 1000)];
    assert.deepEqual(
      batches.map((batch) => batch.length),
      [1000, 1000, 500],
    );
    assert.deepEqual(
      batches.flat().map((chunk) => chunk.offset),
      refs.map((chunk) => chunk.offset),
    );
    assert.equal([...index.chunksOf(id, 1000, 5000, 10_000)].flat().length, 5);
    index.close();
  });

  it("survives a process killed in the middle of writing: each transaction is all or nothing", async (t) => {
    const home = join(dir, "crash");
    ChunkIndex.open(home).close();
    // A writer adding 5,000 rows per transaction, as fast as it can, until killed.
    const writer = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { ChunkIndex } from ${JSON.stringify(INDEX_MODULE)};
         import { randomBytes } from "node:crypto";
import { closeSync, openSync } from "node:fs";
         import { statSync } from "node:fs";
         const index = ChunkIndex.open(process.argv[1]);
         const stats = statSync(process.argv[1], { bigint: true });
         const id = index.startFile(process.argv[1], stats, "cdc");
         for (let round = 0; ; round++) {
           const rows = [];
           for (let i = 0; i < 5000; i++) rows.push([id, { offset: (round * 5000 + i) * 10, size: 10, hash: randomBytes(32) }]);
           index.addChunks(rows);
           if (round === 2) process.stdout.write("writing\\n");
         }`,
        home,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    onCleanup(t, () => writer.kill("SIGKILL"));
    await new Promise<void>((resolve) => writer.stdout.once("data", () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, 150));
    writer.kill("SIGKILL");
    await new Promise((resolve) => writer.once("close", resolve));

    const db = new Database(join(home, "index.db"));
    assert.equal(db.pragma("integrity_check", { simple: true }), "ok");
    const rows = (db.prepare("SELECT count(*) AS n FROM chunks").get() as { n: number }).n;
    db.close();
    assert.ok(rows >= 15_000, `${rows} rows`);
    assert.equal(rows % 5000, 0, "no transaction was half applied");
    const index = ChunkIndex.open(home);
    assert.equal(index.stats().chunks, rows);
    index.close();
  });

  it("waits for another process that holds the database while it is being created", async (t) => {
    const home = join(dir, "contended");
    await mkdir(home);
    const path = join(home, "index.db");
    // Another process has just created the file and is writing to it: the switch to WAL cannot
    // happen until it commits, and SQLite does not wait for that by itself.
    const holder = spawn(
      process.execPath,
      [
        "-e",
        `const Database = require(${JSON.stringify(require.resolve("better-sqlite3"))});
         const db = new Database(process.argv[1]);
         db.exec("CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1)");
         process.stdout.write("holding\\n");
         setTimeout(() => { db.exec("COMMIT"); db.close(); }, 400);`,
        path,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    onCleanup(t, () => holder.kill("SIGKILL"));
    await new Promise<void>((resolve) => holder.stdout.once("data", () => resolve()));
    // Not waiting would fail with SQLITE_BUSY (how long it waited is not the point).
    const index = ChunkIndex.open(home);
    assert.equal(index.stats().files, 0);
    index.close();
    await new Promise((resolve) => holder.once("close", resolve));
  });

  it("sets a damaged database aside and starts a new one", async () => {
    const home = join(dir, "damaged");
    ChunkIndex.open(home).close();
    await writeFile(join(home, "index.db"), randomBytes(64 * 1024));
    const index = ChunkIndex.open(home);
    assert.equal(index.stats().files, 0);
    index.close();
    assert.ok((await readdir(home)).some((name) => name.startsWith("index.db.corrupt-")));
  });
});
