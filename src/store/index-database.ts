/**
 * The chunk index's SQLite database: opening it (WAL, the lock wait, setting a damaged file
 * aside), its schema and its prepared statements. ChunkIndex (chunk-index.ts) is the only user.
 */
import { createRequire } from "node:module";
import type Database from "better-sqlite3";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { ensurePrivateFile, narrowIfPresent } from "./private-file.js";

const SCHEMA_VERSION = 3;
/** How long a process waits for another one's write before it reports the index locked. */
const LOCK_TIMEOUT_MS = 10_000;
/** How many places a chunk lookup returns: enough to skip a few stale ones. */
const MAX_SOURCES = 8;

/** A row of the files table. */
export interface FileRow {
  id: number;
  path: string;
  chunker: string;
  size: number;
  identity: string;
  inode: string;
  file_hash: Buffer | null;
  chunk_count: number;
  target: string | null;
  version: string | null;
  owner: number | null;
  boot_id: string | null;
}

/** better-sqlite3, loaded with the first index opened: `ls` and `cat` never open one, and start sooner. */
function sqlite(): typeof Database {
  return createRequire(import.meta.url)("better-sqlite3");
}

export function openDatabase(path: string): Database.Database {
  return openPrivateDatabase(path, createSchema);
}

/**
 * A SQLite database private to this user, in WAL mode, its schema made or checked by
 * `createSchema` in one write transaction (the chunk index; a mount's chunk store).
 */
export function openPrivateDatabase(
  path: string,
  createSchema: (db: Database.Database) => void,
): Database.Database {
  // The index names every file this user pulled or indexed: 0600, as are the -wal and -shm files
  // SQLite creates with the database's mode.
  ensurePrivateFile(path);
  narrowIfPresent(`${path}-wal`);
  narrowIfPresent(`${path}-shm`);
  const db = new (sqlite())(path, { timeout: LOCK_TIMEOUT_MS });
  try {
    useWriteAheadLog(db);
    // WAL with synchronous=NORMAL: a commit survives a killed process (it is in the OS), and a
    // power cut loses at most the last commits, never the database. The index is a cache.
    db.pragma("synchronous = NORMAL");
    db.transaction(() => createSchema(db)).immediate();
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/**
 * Switches the database to WAL. The switch reads the file, then asks for the write lock, and
 * SQLite does not wait for a lock it would have to upgrade to (it could deadlock), so two
 * processes creating the index at once saw "database is locked" at once. It is retried here
 * within the same budget. WAL is a property of the file: after the first open there is nothing
 * to switch and no lock to take.
 */
function useWriteAheadLog(db: Database.Database): void {
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  for (let pause = 5; ; pause = Math.min(pause * 2, 200)) {
    try {
      if (db.pragma("journal_mode", { simple: true }) === "wal") return;
      if (db.pragma("journal_mode = WAL", { simple: true }) === "wal") return;
    } catch (err) {
      if (!isBusy(err)) throw err;
    }
    if (Date.now() >= deadline) throw new Error("database is locked (switching it to WAL)");
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, pause);
  }
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && code.startsWith("SQLITE_BUSY");
}

/** Creates the tables, or recreates them when they are from another version (the index is a cache). */
function createSchema(db: Database.Database): void {
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version !== SCHEMA_VERSION) {
    db.exec(`
        DROP TABLE IF EXISTS chunks;
        DROP TABLE IF EXISTS files;
        CREATE TABLE files (
          id INTEGER PRIMARY KEY,
          path TEXT NOT NULL UNIQUE,
          chunker TEXT NOT NULL,
          size INTEGER NOT NULL,
          identity TEXT NOT NULL,
          inode TEXT NOT NULL,
          file_hash BLOB,
          chunk_count INTEGER NOT NULL DEFAULT 0,
          target TEXT,
          version TEXT,
          owner INTEGER,
          boot_id TEXT,
          indexed_at INTEGER NOT NULL
        );
        CREATE INDEX files_by_target ON files (target) WHERE target IS NOT NULL;
        CREATE TABLE chunks (
          file_id INTEGER NOT NULL,
          offset INTEGER NOT NULL,
          size INTEGER NOT NULL,
          hash BLOB NOT NULL,
          PRIMARY KEY (file_id, offset)
        ) WITHOUT ROWID;
        CREATE INDEX chunks_by_hash ON chunks (hash);
        PRAGMA user_version = ${SCHEMA_VERSION};
      `);
  }
}

/** The index's queries, prepared once per connection. */
export interface IndexStatements {
  fileByPath: Database.Statement;
  downloadByTarget: Database.Statement;
  chunksOfFile: Database.Statement;
  chunkAt: Database.Statement;
  locate: Database.Statement;
  insertFile: Database.Statement;
  insertChunk: Database.Statement;
  finishFile: Database.Statement;
  claim: Database.Statement;
  deleteChunks: Database.Statement;
  deleteFile: Database.Statement;
  allFiles: Database.Statement;
  fileStats: Database.Statement;
  chunkStats: Database.Statement;
  countChunks: Database.Statement;
  uniqueStats: Database.Statement;
}

export function prepareStatements(db: Database.Database): IndexStatements {
  return {
    fileByPath: db.prepare("SELECT * FROM files WHERE path = ?"),
    downloadByTarget: db.prepare(
      "SELECT * FROM files WHERE target = ? AND file_hash IS NULL ORDER BY indexed_at DESC LIMIT 1",
    ),
    chunksOfFile: db
      .prepare(
        "SELECT offset, size, hash FROM chunks WHERE file_id = ? AND offset >= ? AND offset < ? ORDER BY offset LIMIT ?",
      )
      .raw(),
    chunkAt: db.prepare("SELECT hash FROM chunks WHERE file_id = ? AND offset = ?"),
    // CROSS JOIN keeps this order: with few files the planner would scan a file's chunks instead.
    locate: db.prepare(`
      SELECT files.id, files.path, files.identity, files.inode, files.file_hash, chunks.offset, chunks.size
      FROM chunks CROSS JOIN files ON files.id = chunks.file_id
      WHERE chunks.hash = ? LIMIT ${MAX_SOURCES}`),
    insertFile: db.prepare(`
      INSERT INTO files (path, chunker, size, identity, inode, target, version, owner, boot_id, indexed_at)
      VALUES (@path, @chunker, @size, @identity, @inode, @target, @version, @owner, @bootId, @indexedAt)`),
    // A file forgotten meanwhile (another process re-indexed it) gets no orphan chunks.
    insertChunk: db.prepare(`
      INSERT OR REPLACE INTO chunks (file_id, offset, size, hash)
      SELECT @fileId, @offset, @size, @hash WHERE EXISTS (SELECT 1 FROM files WHERE id = @fileId)`),
    finishFile: db.prepare(`
      UPDATE files SET path = @path, size = @size, identity = @identity, inode = @inode,
        file_hash = @fileHash, chunk_count = @chunkCount, target = NULL, version = NULL
      WHERE id = @id`),
    claim: db.prepare("UPDATE files SET owner = ? WHERE id = ?"),
    deleteChunks: db.prepare("DELETE FROM chunks WHERE file_id = ?"),
    deleteFile: db.prepare("DELETE FROM files WHERE id = ?"),
    allFiles: db.prepare(
      "SELECT files.*, (SELECT count(*) FROM chunks WHERE file_id = files.id) AS chunks FROM files",
    ),
    fileStats: db.prepare(
      "SELECT count(*) AS files, count(*) - count(file_hash) AS downloads, sum(size) AS bytes FROM files",
    ),
    chunkStats: db.prepare("SELECT count(*) AS chunks FROM chunks"),
    countChunks: db.prepare("SELECT count(*) AS count FROM chunks WHERE file_id = ?"),
    uniqueStats: db.prepare(
      "SELECT sum(size) AS bytes FROM (SELECT max(size) AS size FROM chunks GROUP BY hash)",
    ),
  };
}

export function isCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === "SQLITE_CORRUPT" || code === "SQLITE_NOTADB";
}

export function indexError(err: unknown, path: string): TeleportError {
  // A system error keeps its code (PERMISSION, NO_SPACE, with their hints); SQLite's are IO.
  const error = toTeleportError(err, `cannot open the chunk index ${path}`);
  return error.code === ErrorCode.INTERNAL
    ? new TeleportError(ErrorCode.IO, error.detail, { cause: err })
    : error;
}
