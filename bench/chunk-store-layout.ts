/**
 * Layouts for a mount's persistent chunk store, measured on the chunks of a real tree: one file
 * per chunk in a fan-out folder (rows in SQLite for the LRU), chunks appended to a pack file
 * (rows in SQLite locate them), and chunks as SQLite BLOBs. Each: write every chunk (one
 * transaction per chunk, as a mount stores them as they arrive), then read each back by hash and
 * verify it. Prints JSON lines. Usage: node dist/bench/chunk-store-layout.js TREE [CHUNKS] [DIR]
 */
import { execFileSync } from "node:child_process";
import {
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type Database from "better-sqlite3";
import { defaultChunker } from "../src/chunking/chunker.js";
import { hashBytes } from "../src/chunking/hash.js";
import { chunkBytes } from "../src/chunking/manifest.js";

const [tree = "/dev/shm/rt/t6.1.190-1/linux-source-6.1", countText = "80000", base = "/tmp/layout-bench"] =
  process.argv.slice(2);
const wanted = Number(countText);

function* files(folder: string): Generator<string> {
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (entry.isFile()) yield path;
  }
}

function collectChunks(): Array<{ hash: Buffer; bytes: Buffer }> {
  const seen = new Set<string>();
  const chunks: Array<{ hash: Buffer; bytes: Buffer }> = [];
  const chunker = defaultChunker();
  for (const path of files(tree)) {
    const data = readFileSync(path);
    if (data.length === 0) continue;
    for (const ref of chunkBytes(data, chunker).chunks) {
      const key = ref.hash.toString("hex");
      if (seen.has(key)) continue;
      seen.add(key);
      chunks.push({ hash: ref.hash, bytes: data.subarray(ref.offset, ref.offset + ref.size) });
      if (chunks.length >= wanted) return chunks;
    }
  }
  return chunks;
}

function openDb(path: string): Database.Database {
  const db = new (createRequire(import.meta.url)("better-sqlite3"))(path) as Database.Database;
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  return db;
}

interface Layout {
  name: string;
  write(hash: Buffer, bytes: Buffer): void;
  read(hash: Buffer): Buffer;
  close(): void;
}

function fileLayout(dir: string): Layout {
  const db = openDb(join(dir, "index.db"));
  db.exec("CREATE TABLE chunks (hash BLOB PRIMARY KEY, size INTEGER, used INTEGER) WITHOUT ROWID");
  const insert = db.prepare("INSERT INTO chunks VALUES (?, ?, ?)");
  const find = db.prepare("SELECT size FROM chunks WHERE hash = ?");
  for (let i = 0; i < 256; i++) mkdirSync(join(dir, i.toString(16).padStart(2, "0")));
  const pathOf = (hash: Buffer) => join(dir, hash.subarray(0, 1).toString("hex"), hash.toString("hex"));
  return {
    name: "file-per-chunk",
    write(hash, bytes) {
      const path = pathOf(hash);
      const fd = openSync(`${path}.tmp`, "wx", 0o600);
      writeSync(fd, bytes);
      closeSync(fd);
      renameSync(`${path}.tmp`, path);
      insert.run(hash, bytes.length, Date.now());
    },
    read(hash) {
      const row = find.get(hash) as { size: number };
      const out = Buffer.allocUnsafe(row.size);
      const fd = openSync(pathOf(hash), "r");
      readSync(fd, out, 0, row.size, 0);
      closeSync(fd);
      return out;
    },
    close: () => db.close(),
  };
}

function packLayout(dir: string): Layout {
  const db = openDb(join(dir, "index.db"));
  db.exec(
    "CREATE TABLE chunks (hash BLOB PRIMARY KEY, pack INTEGER, offset INTEGER, size INTEGER, used INTEGER) WITHOUT ROWID",
  );
  const insert = db.prepare("INSERT INTO chunks VALUES (?, 0, ?, ?, ?)");
  const find = db.prepare("SELECT offset, size FROM chunks WHERE hash = ?");
  const fd = openSync(join(dir, "pack-0"), "w+", 0o600);
  let end = 0;
  return {
    name: "pack-file",
    write(hash, bytes) {
      writeSync(fd, bytes, 0, bytes.length, end);
      insert.run(hash, end, bytes.length, Date.now());
      end += bytes.length;
    },
    read(hash) {
      const row = find.get(hash) as { offset: number; size: number };
      const out = Buffer.allocUnsafe(row.size);
      readSync(fd, out, 0, row.size, row.offset);
      return out;
    },
    close() {
      closeSync(fd);
      db.close();
    },
  };
}

function blobLayout(dir: string): Layout {
  const db = openDb(join(dir, "index.db"));
  db.exec("CREATE TABLE chunks (hash BLOB PRIMARY KEY, bytes BLOB, used INTEGER) WITHOUT ROWID");
  const insert = db.prepare("INSERT INTO chunks VALUES (?, ?, ?)");
  const find = db.prepare("SELECT bytes FROM chunks WHERE hash = ?");
  return {
    name: "sqlite-blob",
    write: (hash, bytes) => void insert.run(hash, bytes, Date.now()),
    read: (hash) => (find.get(hash) as { bytes: Buffer }).bytes,
    close: () => db.close(),
  };
}

function measure(make: (dir: string) => Layout, chunks: Array<{ hash: Buffer; bytes: Buffer }>): void {
  const dir = join(base, String(process.pid));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const layout = make(dir);
  let started = performance.now();
  for (const { hash, bytes } of chunks) layout.write(hash, bytes);
  const writeMs = performance.now() - started;
  execFileSync("sync");
  started = performance.now();
  let bad = 0;
  for (const { hash } of chunks) if (!hashBytes(layout.read(hash)).equals(hash)) bad++;
  const readMs = performance.now() - started;
  layout.close();
  const diskKiB = Number(execFileSync("du", ["-sk", dir]).toString().split("\t")[0]);
  const bytes = chunks.reduce((sum, chunk) => sum + chunk.bytes.length, 0);
  console.log(
    JSON.stringify({
      layout: layout.name,
      chunks: chunks.length,
      bytes,
      writeChunksPerS: Math.round(chunks.length / (writeMs / 1000)),
      readVerifiedChunksPerS: Math.round(chunks.length / (readMs / 1000)),
      readMBps: Math.round(bytes / 1e6 / (readMs / 1000)),
      diskOverPayload: Number(((diskKiB * 1024) / bytes).toFixed(2)),
      bad,
    }),
  );
  rmSync(dir, { recursive: true, force: true });
}

const chunks = collectChunks();
for (const make of [fileLayout, packLayout, blobLayout]) measure(make, chunks);
