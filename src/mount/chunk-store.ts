/**
 * A mount's persistent chunk cache: verified chunks kept on disk by BLAKE3 hash, so a remount, a
 * second mount process, or the same content under another name reads them without the network.
 *
 * One file per chunk, named by its hash, in a fan-out of 256 folders; a SQLite table (WAL, shared
 * by every mount process of this user) holds each chunk's size and last use, for the LRU bound.
 * Chosen over pack files by measurement (docs: bench/chunk-store-layout.ts): a chunk evicted is a
 * file unlinked, a crash leaves whole files or none.
 *
 * Crash safety and trust: a chunk is written to a temporary name and renamed into place, and every
 * chunk read back is hashed again: a file that does not match its name (torn, damaged, changed) is
 * a miss, deleted, never served. The folder is the user's alone (0700), and chunk files are opened
 * with O_NOFOLLOW, so another local user can neither plant a chunk nor redirect one.
 *
 * The bound: a chunk's row, counted in the total, is written before its file, after evicting the
 * least recently used chunks it needs room for; so the files on disk never hold more than the
 * capacity (a file being written counts from the moment its row is).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type Database from "better-sqlite3";
import { hashBytes } from "../chunking/hash.js";
import { openPrivateDatabase } from "../store/index-database.js";
import type { ChunkRef } from "../wire/messages.js";
import {
  isAlive,
  privateFolder,
  readChunkFile,
  readChunkFileAsync,
  removeQuietly,
  tempPath,
  writeChunkFileAsync,
} from "./chunk-files.js";

const DATABASE_FILE = "chunks.db";
const SCHEMA_VERSION = 1;
/** Last uses are written this often (one transaction), not at every read. */
const TOUCH_INTERVAL_MS = 1000;
/** Chunk files written at once, each through the thread pool. */
const WRITES_AT_ONCE = 4;
/** Chunks evicted per query while making room. */
const EVICT_BATCH = 64;
/** Chunks last read, kept: a chunk that two reads of the kernel share is read from disk once. */
const RECENT_CHUNKS = 32;
/**
 * Bytes of chunks read ahead of a reader and not yet dropped: the read-ahead window (at most
 * 64 MiB, remote-files.ts) and what the kernel's requests still share.
 */
const PRELOAD_BYTES = 96 << 20;
/**
 * Preloaded chunks are cut from buffers this large, one allocation for ~16 chunks: a fresh
 * 64 KiB buffer per chunk kept the garbage collector busy (17 % of a warm read).
 */
const PRELOAD_SLAB_BYTES = 1 << 20;
/** Hashes known to have a file, so prefetch asking again and again costs no stat. */
const KNOWN_CHUNKS = 1 << 16;

/** A chunk the store was asked to keep, until its file is written. */
interface Incoming {
  key: string;
  bytes: Buffer;
}

export interface ChunkStoreStats {
  chunks: number;
  bytes: number;
  capacity: number;
}

export class ChunkStore {
  readonly folder: string;
  readonly capacity: number;
  readonly #db: Database.Database;
  readonly #statements: StoreStatements;
  /** Chunks waiting for their rows, taken in one transaction at the next turn of the event loop. */
  #incoming: Incoming[] = [];
  /** Hashes (hex) queued or being written by this process. */
  readonly #writing = new Set<string>();
  readonly #writes = new Set<Promise<void>>();
  /** Hashes read since the last uses were written. */
  #touched = new Set<string>();
  readonly #touchTimer: NodeJS.Timeout;
  readonly #fanOut = new Set<string>();
  readonly #recent = new Map<string, Buffer>();
  readonly #known = new Set<string>();
  /** Chunks read ahead (verified, or undefined for a miss), oldest first, and their bytes. */
  readonly #preloads = new Map<string, { size: number; bytes: Promise<Buffer | undefined> }>();
  #preloadBytes = 0;
  #slab: Buffer = Buffer.alloc(0);
  #slabUsed = 0;
  #lastUse = 0;
  #closed = false;

  private constructor(folder: string, capacity: number, db: Database.Database) {
    this.folder = folder;
    this.capacity = capacity;
    this.#db = db;
    this.#statements = prepareStatements(db);
    this.#touchTimer = setInterval(() => this.#writeUses(), TOUCH_INTERVAL_MS);
    this.#touchTimer.unref();
  }

  /**
   * Opens (creating) the store in `folder`, private to this user, bounded by `capacity` bytes:
   * chunks beyond it (a smaller bound than last time) are evicted now, and chunks a killed
   * process was writing are removed.
   */
  static open(folder: string, capacity: number): ChunkStore {
    privateFolder(folder);
    const store = new ChunkStore(
      folder,
      capacity,
      openPrivateDatabase(join(folder, DATABASE_FILE), createSchema),
    );
    store.#removeAbandoned();
    store.#transaction(() => store.#makeRoom());
    return store;
  }

  /** The chunk's verified bytes if the store holds it; a file that does not match is deleted. */
  read(ref: ChunkRef): Buffer | undefined {
    if (this.#closed) return undefined;
    const key = ref.hash.toString("hex");
    const recent = this.#recent.get(key);
    if (recent !== undefined) return recent;
    const bytes = readChunkFile(this.#pathOf(key), ref.size);
    if (bytes === undefined || !hashBytes(bytes).equals(ref.hash)) {
      this.#drop(key);
      return undefined;
    }
    this.#touched.add(key);
    this.#remember(key, bytes);
    return bytes;
  }

  /**
   * Starts reading a held chunk ahead of its reader, through the thread pool: after a remount the
   * chunk files are on disk, and reading them one at a time on the main thread leaves it waiting
   * on each. preloaded() then hands the verified bytes over.
   */
  preload(ref: ChunkRef): void {
    const key = ref.hash.toString("hex");
    if (this.#closed || this.#recent.has(key) || this.#preloads.has(key)) return;
    const bytes = readChunkFileAsync(this.#pathOf(key), ref.size, this.#cut(ref.size)).then((read) => {
      if (read !== undefined && hashBytes(read).equals(ref.hash)) {
        this.#touched.add(key);
        return read;
      }
      if (!this.#closed) this.#drop(key);
      return undefined;
    });
    this.#preloads.set(key, { size: ref.size, bytes });
    this.#preloadBytes += ref.size;
    for (const [oldest, { size }] of this.#preloads) {
      if (this.#preloadBytes <= PRELOAD_BYTES) break;
      this.#preloads.delete(oldest);
      this.#preloadBytes -= size;
    }
  }

  /** `size` bytes of the current slab (a new one when it has not that many left). */
  #cut(size: number): Buffer {
    if (this.#slab.length - this.#slabUsed < size) {
      this.#slab = Buffer.allocUnsafe(Math.max(size, PRELOAD_SLAB_BYTES));
      this.#slabUsed = 0;
    }
    this.#slabUsed += size;
    return this.#slab.subarray(this.#slabUsed - size, this.#slabUsed);
  }

  /** The verified bytes of a chunk preload() read or is reading (undefined inside: not held). */
  preloaded(ref: ChunkRef): Promise<Buffer | undefined> | undefined {
    return this.#preloads.get(ref.hash.toString("hex"))?.bytes;
  }

  /**
   * Whether the store has the chunk (not verified: read() does that). Its row says so, not a stat
   * of its file: after a remount the rows are in a few pages of the database, the files' inodes
   * each on disk. A row whose file is gone (a crash between the two) reads as a miss.
   */
  holds(ref: ChunkRef): boolean {
    const key = ref.hash.toString("hex");
    if (this.#known.has(key)) return true;
    if (this.#closed || this.#statements.isHeld.get(ref.hash) === undefined) return false;
    if (this.#known.size >= KNOWN_CHUNKS) this.#known.clear();
    this.#known.add(key);
    return true;
  }

  #remember(key: string, bytes: Buffer): void {
    this.#recent.set(key, bytes);
    if (this.#recent.size > RECENT_CHUNKS) {
      const oldest = this.#recent.keys().next().value;
      if (oldest !== undefined) this.#recent.delete(oldest);
    }
  }

  /** Keeps a verified chunk (written in the background; a failed write only loses the copy). */
  write(ref: ChunkRef, bytes: Buffer): void {
    const key = ref.hash.toString("hex");
    if (this.#closed || bytes.length > this.capacity || this.#writing.has(key)) return;
    this.#writing.add(key);
    if (this.#incoming.length === 0) setImmediate(() => this.#admit());
    this.#incoming.push({ key, bytes });
  }

  stats(): ChunkStoreStats {
    const { chunks, bytes } = this.#statements.totals.get() as { chunks: number; bytes: number };
    return { chunks, bytes, capacity: this.capacity };
  }

  /** Waits for the chunks being written, records last uses, closes the database. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#admit();
    while (this.#writes.size > 0) await Promise.all(this.#writes);
    this.#closed = true;
    clearInterval(this.#touchTimer);
    this.#writeUses();
    this.#db.close();
  }

  /** Rows for the incoming chunks (room made for each), then their files, in the background. */
  #admit(): void {
    const incoming = this.#incoming;
    this.#incoming = [];
    if (incoming.length === 0 || !this.#db.open) return;
    const admitted = this.#transaction(() =>
      incoming.filter(({ key, bytes }) => {
        const inserted = this.#statements.reserve.run(
          Buffer.from(key, "hex"),
          bytes.length,
          this.#now(),
          process.pid,
        );
        if (inserted.changes === 0) return false; // held already, or being written by another process
        if (this.#makeRoom()) return true;
        this.#statements.remove.run(Buffer.from(key, "hex"));
        return false;
      }),
    );
    const kept = new Set(admitted.map((chunk) => chunk.key));
    for (const { key } of incoming) if (!kept.has(key)) this.#writing.delete(key);
    if (admitted.length === 0) return;
    const writing = this.#writeFiles(admitted);
    this.#writes.add(writing);
    void writing.finally(() => this.#writes.delete(writing));
  }

  /** Writes each chunk to a temporary name and renames it into place, then marks it held. */
  async #writeFiles(chunks: Incoming[]): Promise<void> {
    const written: boolean[] = [];
    // Through the thread pool, a few at once: on a disk file system creating and renaming each
    // chunk file costs the main thread more than the read it serves (docs/decisions.md, "Mount: sequential read speed").
    for (let at = 0; at < chunks.length; at += WRITES_AT_ONCE) {
      const group = chunks.slice(at, at + WRITES_AT_ONCE);
      written.push(...(await Promise.all(group.map(({ key, bytes }) => this.#writeFile(key, bytes)))));
    }
    if (this.#db.open)
      this.#transaction(() => {
        chunks.forEach(({ key }, i) => {
          const hash = Buffer.from(key, "hex");
          if (written[i] === true) this.#statements.held.run(this.#now(), hash);
          else this.#statements.remove.run(hash);
        });
      });
    for (const { key } of chunks) this.#writing.delete(key);
  }

  /** Writes a chunk to a temporary name and renames it into place; false if that failed. */
  #writeFile(key: string, bytes: Buffer): Promise<boolean> {
    try {
      this.#ensureFanOut(key);
    } catch {
      return Promise.resolve(false);
    }
    return writeChunkFileAsync(this.#pathOf(key), process.pid, bytes);
  }

  /**
   * Evicts least recently used chunks until what the rows count fits the capacity (within a
   * transaction); false if it cannot (the rest is being written).
   */
  #makeRoom(): boolean {
    for (;;) {
      const { bytes } = this.#statements.totals.get() as { bytes: number };
      if (bytes <= this.capacity) return true;
      const oldest = this.#statements.oldest.all(EVICT_BATCH) as Array<{ hash: Buffer }>;
      if (oldest.length === 0) return false;
      let excess = bytes - this.capacity;
      for (const { hash } of oldest) {
        if (excess <= 0) break;
        const { size } = this.#statements.sizeOf.get(hash) as { size: number };
        // The file goes first: a process killed between leaves a row without a file (a miss).
        this.#known.delete(hash.toString("hex"));
        removeQuietly(this.#pathOf(hash.toString("hex")));
        this.#statements.remove.run(hash);
        excess -= size;
      }
    }
  }

  /** A chunk file that did not verify: removed with its row. */
  #drop(key: string): void {
    this.#known.delete(key);
    removeQuietly(this.#pathOf(key));
    if (this.#db.open) this.#transaction(() => this.#statements.removeHeld.run(Buffer.from(key, "hex")));
  }

  /** Rows of chunks whose writer is gone (killed mid-write), and their files. */
  #removeAbandoned(): void {
    const pending = this.#statements.pending.all() as Array<{ hash: Buffer; owner: number }>;
    const abandoned = pending.filter(({ owner }) => !isAlive(owner));
    if (abandoned.length === 0) return;
    this.#transaction(() => {
      for (const { hash, owner } of abandoned) {
        const path = this.#pathOf(hash.toString("hex"));
        removeQuietly(tempPath(path, owner));
        removeQuietly(path);
        this.#statements.remove.run(hash);
      }
    });
  }

  #writeUses(): void {
    if (this.#touched.size === 0 || !this.#db.open) return;
    const touched = this.#touched;
    this.#touched = new Set();
    this.#transaction(() => {
      for (const key of touched) this.#statements.touch.run(this.#now(), Buffer.from(key, "hex"));
    });
  }

  /** A time of use: milliseconds, made strictly increasing within this process so uses order. */
  #now(): number {
    this.#lastUse = Math.max(Date.now(), this.#lastUse + 1);
    return this.#lastUse;
  }

  #ensureFanOut(key: string): void {
    const name = key.slice(0, 2);
    if (this.#fanOut.has(name)) return;
    mkdirSync(join(this.folder, name), { mode: 0o700, recursive: true });
    this.#fanOut.add(name);
  }

  #pathOf(key: string): string {
    return join(this.folder, key.slice(0, 2), key);
  }

  /** A write transaction taken at once (see ChunkIndex's #write: waits for the lock). */
  #transaction<T>(change: () => T): T {
    return this.#db.transaction(change).immediate();
  }
}

interface StoreStatements {
  reserve: Database.Statement;
  held: Database.Statement;
  touch: Database.Statement;
  oldest: Database.Statement;
  sizeOf: Database.Statement;
  remove: Database.Statement;
  removeHeld: Database.Statement;
  pending: Database.Statement;
  totals: Database.Statement;
  isHeld: Database.Statement;
}

function createSchema(db: Database.Database): void {
  if ((db.pragma("user_version", { simple: true }) as number) === SCHEMA_VERSION) return;
  // owner: the process writing the chunk's file, null once it is in place.
  db.exec(`
    DROP TABLE IF EXISTS chunks;
    DROP TABLE IF EXISTS totals;
    CREATE TABLE chunks (
      hash BLOB PRIMARY KEY,
      size INTEGER NOT NULL,
      used INTEGER NOT NULL,
      owner INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX chunks_by_use ON chunks (used) WHERE owner IS NULL;
    CREATE TABLE totals (id INTEGER PRIMARY KEY CHECK (id = 0), chunks INTEGER NOT NULL, bytes INTEGER NOT NULL);
    INSERT INTO totals VALUES (0, 0, 0);
    CREATE TRIGGER chunk_added AFTER INSERT ON chunks
      BEGIN UPDATE totals SET chunks = chunks + 1, bytes = bytes + NEW.size; END;
    CREATE TRIGGER chunk_removed AFTER DELETE ON chunks
      BEGIN UPDATE totals SET chunks = chunks - 1, bytes = bytes - OLD.size; END;
    PRAGMA user_version = ${SCHEMA_VERSION};
  `);
}

function prepareStatements(db: Database.Database): StoreStatements {
  return {
    reserve: db.prepare("INSERT OR IGNORE INTO chunks (hash, size, used, owner) VALUES (?, ?, ?, ?)"),
    held: db.prepare("UPDATE chunks SET used = ?, owner = NULL WHERE hash = ?"),
    touch: db.prepare("UPDATE chunks SET used = ? WHERE hash = ? AND owner IS NULL"),
    oldest: db.prepare("SELECT hash FROM chunks WHERE owner IS NULL ORDER BY used LIMIT ?"),
    sizeOf: db.prepare("SELECT size FROM chunks WHERE hash = ?"),
    remove: db.prepare("DELETE FROM chunks WHERE hash = ?"),
    removeHeld: db.prepare("DELETE FROM chunks WHERE hash = ? AND owner IS NULL"),
    pending: db.prepare("SELECT hash, owner FROM chunks WHERE owner IS NOT NULL"),
    totals: db.prepare("SELECT chunks, bytes FROM totals WHERE id = 0"),
    isHeld: db.prepare("SELECT 1 FROM chunks WHERE hash = ? AND owner IS NULL"),
  };
}
