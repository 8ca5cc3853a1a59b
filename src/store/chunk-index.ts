/**
 * The persistent chunk index: for every file this machine has hashed — files a host serves, files
 * pulled, folders indexed as seeds, downloads still in progress — its identity when hashed and
 * its chunk list. It answers two questions:
 * - "is this file unchanged since it was hashed, and what are its chunks?" (the file-state cache:
 *   a host answers manifests without re-reading files, a client knows what its old copy holds);
 * - "where on this machine are the bytes of the chunk with this hash?" (dedup).
 *
 * SQLite through better-sqlite3, in WAL mode: every change is a transaction, so a process killed
 * at any moment leaves the index as it was before or after a change, never between; host and
 * client processes can share it. Chosen over LMDB by measurement (README, "Dedup index").
 *
 * Identity is (device, inode, size, mtime, ctime) in nanoseconds: any write to a file changes its
 * mtime or ctime, so a complete file whose identity still matches holds exactly the indexed
 * chunks. A download in progress is our own temporary file and changes as we write it; it is
 * trusted by device and inode, and only for the chunks its journal recorded after writing them.
 */
import type { BigIntStats } from "node:fs";
import { mkdirSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import type Database from "better-sqlite3";
import type { FileDigest } from "../chunking/manifest.js";
import type { ChunkRef } from "../wire/messages.js";
import { ChunkFilter } from "./chunk-filter.js";
import {
  type FileRow,
  type IndexStatements,
  indexError,
  isCorruption,
  openDatabase,
  prepareStatements,
} from "./index-database.js";

const INDEX_FILE = "index.db";

export interface IndexedFile {
  id: number;
  path: string;
  chunker: string;
  size: number;
  /** BLAKE3 over the chunk hashes (chunking/manifest.ts); null while a download is in progress. */
  fileHash: Buffer | null;
  chunkCount: number;
}

/** A complete file and its chunks, recorded at once (see `recordFiles`). */
export interface RecordedFile {
  path: string;
  stats: BigIntStats;
  chunker: string;
  digest: FileDigest;
  chunks: readonly ChunkRef[];
}

/** A file of the index now complete at `path` (see `finishFile`). */
export interface FinishedFile {
  fileId: number;
  path: string;
  stats: BigIntStats;
  digest: FileDigest;
}

/** A download in progress: a temporary file, its journaled chunks, and the file it will become. */
export interface Download extends IndexedFile {
  inode: string;
  /** The remote file's version it was a download of. */
  version: string;
  /** Process id of the pull writing it; it may have ended. */
  owner: number;
  /** The boot it was started in (bootId()), null where unknown: its journal outlives a crash of the process, not of the machine. */
  bootId: string | null;
}

/** A place on this machine holding a chunk's bytes. */
export interface ChunkSource {
  fileId: number;
  path: string;
  offset: number;
  size: number;
  /** Identity when indexed, to compare with the file's identity now. */
  identity: string;
  /** True for a download in progress, trusted by `inode` only. */
  inDownload: boolean;
  inode: string;
}

export interface IndexStats {
  /** Complete files. */
  files: number;
  /** Downloads in progress, kept for resuming. */
  downloads: number;
  chunks: number;
  /** Bytes of indexed files (each file counted once). */
  bytes: number;
  /** Bytes of distinct chunk contents. */
  uniqueBytes: number;
  databaseBytes: number;
}

/**
 * This boot of the machine (Linux: /proc/sys/kernel/random/boot_id), null where unknown. A
 * journal row is written after its chunk's bytes, but the bytes may sit in the page cache: a
 * killed process loses neither, a crash of the machine may lose the bytes and keep the row.
 */
export function bootId(): string | null {
  if (currentBoot === undefined) {
    try {
      currentBoot = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() || null;
    } catch {
      currentBoot = null;
    }
  }
  return currentBoot;
}
let currentBoot: string | null | undefined;

export function identityOf(stats: BigIntStats): string {
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`;
}

export function inodeOf(stats: BigIntStats): string {
  return `${stats.dev}:${stats.ino}`;
}

export class ChunkIndex {
  readonly path: string;
  readonly #db: Database.Database;
  readonly #statements: IndexStatements;
  readonly #filter: ChunkFilter;

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.#db = db;
    this.#statements = prepareStatements(db);
    this.#filter = new ChunkFilter(db);
  }

  /** Opens (creating if needed) the index in a TELEPORT_HOME folder. */
  static open(home: string): ChunkIndex {
    mkdirSync(home, { recursive: true, mode: 0o700 });
    return ChunkIndex.openFile(join(home, INDEX_FILE));
  }

  static openFile(path: string): ChunkIndex {
    try {
      return new ChunkIndex(path, openDatabase(path));
    } catch (err) {
      // The index is a cache of what the files say: a damaged one is set aside and rebuilt.
      if (!isCorruption(err)) throw indexError(err, path);
      renameSync(path, `${path}.corrupt-${Date.now()}`);
      return new ChunkIndex(path, openDatabase(path));
    }
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }

  /** The file at `path` if it is indexed, complete, cut by `chunker` and unchanged since. */
  lookupFile(path: string, stats: BigIntStats, chunker: string): IndexedFile | undefined {
    const row = this.#statements.fileByPath.get(path) as FileRow | undefined;
    if (row === undefined || row.file_hash === null) return undefined;
    if (row.chunker !== chunker || row.identity !== identityOf(stats)) return undefined;
    return toIndexedFile(row);
  }

  /**
   * The chunks of an indexed file in order, `batchSize` at a time. Each batch is its own query,
   * so callers may await between batches while other queries run.
   */
  *chunksOf(
    fileId: number,
    batchSize: number,
    from = 0,
    to = Number.MAX_SAFE_INTEGER,
  ): Generator<ChunkRef[]> {
    let next = from;
    for (;;) {
      // Rows as arrays: twice as fast as named columns for the 10,000s of rows of a large file.
      const rows = this.#statements.chunksOfFile.all(fileId, next, to, batchSize) as Array<
        [number, number, Buffer]
      >;
      const batch = rows.map(([offset, size, hash]): ChunkRef => ({ offset, size, hash }));
      if (batch.length > 0) yield batch;
      if (batch.length < batchSize) return;
      const last = batch[batch.length - 1] as ChunkRef;
      next = last.offset + 1;
    }
  }

  /** Whether the indexed file holds the chunk with `hash` at `offset`. */
  hasChunkAt(fileId: number, offset: number, hash: Buffer): boolean {
    const row = this.#statements.chunkAt.get(fileId, offset) as { hash: Buffer } | undefined;
    return row?.hash.equals(hash) === true;
  }

  /**
   * Runs `reads` (locate, many times) as one read transaction: one database lock for them all,
   * not one per lookup. A write inside it (forget) may then fail with SQLITE_BUSY at once, where
   * another process wrote meanwhile; its callers keep going without it.
   */
  reading<T>(reads: () => T): T {
    return this.#db.transaction(reads).deferred();
  }

  /** Places that held the chunk's bytes when indexed; the caller checks and verifies them. */
  locate(hash: Buffer): ChunkSource[] {
    if (!this.#filter.mayHold(hash)) return [];
    return (this.#statements.locate.all(hash) as Array<FileRow & ChunkRef>).map((row) => ({
      fileId: row.id,
      path: row.path,
      offset: row.offset,
      size: row.size,
      identity: row.identity,
      inode: row.inode,
      inDownload: row.file_hash === null,
    }));
  }

  /**
   * Starts indexing the file at `path` (replacing what was known of it). With `download`, the file
   * is a download in progress that will become `download.target` once complete, of the remote
   * file's version `download.version`.
   */
  startFile(
    path: string,
    stats: BigIntStats,
    chunker: string,
    download?: { target: string; version: string },
  ): number {
    return this.#write(() => {
      this.#forgetPath(path);
      return this.#insertFile(path, stats, chunker, download);
    });
  }

  /** Records chunks of files being indexed or written, in one transaction. */
  addChunks(entries: Iterable<readonly [fileId: number, chunk: ChunkRef]>): void {
    this.#write(() => {
      for (const [fileId, chunk] of entries) this.#insertChunk(fileId, chunk);
    });
  }

  /** How many chunks are recorded for a file. */
  chunkCount(fileId: number): number {
    return (this.#statements.countChunks.get(fileId) as { count: number }).count;
  }

  /**
   * Marks a file complete: it now lives at `path` (a finished download, renamed) with identity
   * `stats` and content `fileHash`. Whatever was indexed at `path` before is forgotten.
   */
  finishFile(fileId: number, path: string, stats: BigIntStats, digest: FileDigest): void {
    this.finishFiles([{ fileId, path, stats, digest }]);
  }

  /** finishFile for many files, in one transaction. */
  finishFiles(files: readonly FinishedFile[]): void {
    this.#write(() => {
      for (const { fileId, path, stats, digest } of files) {
        const previous = this.#statements.fileByPath.get(path) as FileRow | undefined;
        if (previous !== undefined && previous.id !== fileId) {
          // Indexed already, the same, by a caller that hashed it at the same time (two clients of
          // a host): kept, as another may be reading its chunks batch by batch right now.
          if (sameContent(previous, stats, digest)) {
            this.#forget(fileId);
            continue;
          }
          this.#forget(previous.id);
        }
        this.#complete(fileId, path, stats, digest);
      }
    });
  }

  /** Records complete files with their chunk lists, all in one transaction. */
  recordFiles(files: readonly RecordedFile[]): void {
    this.#write(() => {
      for (const { path, stats, chunker, digest, chunks } of files) {
        this.#forgetPath(path);
        const id = this.#insertFile(path, stats, chunker);
        this.#complete(id, path, stats, digest);
        for (const chunk of chunks) this.#insertChunk(id, chunk);
      }
    });
  }

  #insertFile(
    path: string,
    stats: BigIntStats,
    chunker: string,
    download?: { target: string; version: string },
  ) {
    const result = this.#statements.insertFile.run({
      path,
      chunker,
      size: Number(stats.size),
      identity: identityOf(stats),
      inode: inodeOf(stats),
      target: download?.target ?? null,
      version: download?.version ?? null,
      owner: download === undefined ? null : process.pid,
      bootId: download === undefined ? null : bootId(),
      indexedAt: Date.now(),
    });
    return Number(result.lastInsertRowid);
  }

  #complete(fileId: number, path: string, stats: BigIntStats, digest: FileDigest): void {
    this.#statements.finishFile.run({
      id: fileId,
      path,
      size: Number(stats.size),
      identity: identityOf(stats),
      inode: inodeOf(stats),
      fileHash: digest.fileHash,
      chunkCount: digest.chunkCount,
    });
  }

  #insertChunk(fileId: number, chunk: ChunkRef): void {
    this.#statements.insertChunk.run({ fileId, offset: chunk.offset, size: chunk.size, hash: chunk.hash });
    this.#filter.add(chunk.hash);
  }

  /** The latest download in progress that will become `target`, if one was recorded. */
  findDownload(target: string): Download | undefined {
    const row = this.#statements.downloadByTarget.get(target) as FileRow | undefined;
    return row === undefined
      ? undefined
      : {
          ...toIndexedFile(row),
          inode: row.inode,
          version: row.version ?? "",
          owner: row.owner ?? 0,
          bootId: row.boot_id,
        };
  }

  /** Whether `path` is a download in progress that the journal keeps for resuming. */
  isDownload(path: string): boolean {
    const row = this.#statements.fileByPath.get(path) as FileRow | undefined;
    return row !== undefined && row.file_hash === null;
  }

  /** Takes over a download in progress for this process. */
  claim(fileId: number): void {
    this.#write(() => this.#statements.claim.run(process.pid, fileId));
  }

  forget(fileId: number): void {
    this.#write(() => this.#forget(fileId));
  }

  forgetPath(path: string): void {
    this.#write(() => this.#forgetPath(path));
  }

  stats(): IndexStats {
    const files = this.#statements.fileStats.get() as {
      files: number;
      downloads: number;
      bytes: number | null;
    };
    const chunks = this.#statements.chunkStats.get() as { chunks: number };
    const unique = this.#statements.uniqueStats.get() as { bytes: number | null };
    const pages = this.#db.pragma("page_count", { simple: true }) as number;
    const pageSize = this.#db.pragma("page_size", { simple: true }) as number;
    return {
      files: files.files - files.downloads,
      downloads: files.downloads,
      chunks: chunks.chunks,
      bytes: files.bytes ?? 0,
      uniqueBytes: unique.bytes ?? 0,
      databaseBytes: pages * pageSize,
    };
  }

  /**
   * Forgets every file whose identity `current` no longer matches (changed, moved or gone), then
   * gives the freed pages back to the file system. `current` returns a path's identity and inode
   * now, or undefined if there is nothing there.
   */
  gc(current: (path: string) => { identity: string; inode: string } | undefined): {
    files: number;
    chunks: number;
  } {
    const stale: Array<{ id: number; chunks: number }> = [];
    for (const row of this.#statements.allFiles.iterate() as Iterable<FileRow & { chunks: number }>) {
      const now = current(row.path);
      const valid =
        now !== undefined &&
        (row.file_hash === null ? now.inode === row.inode : now.identity === row.identity);
      if (!valid) stale.push({ id: row.id, chunks: row.chunks });
    }
    this.#write(() => {
      for (const { id } of stale) this.#forget(id);
    });
    this.#db.exec("VACUUM");
    return { files: stale.length, chunks: stale.reduce((sum, file) => sum + file.chunks, 0) };
  }

  /**
   * Runs `change` in a write transaction taken at once (BEGIN IMMEDIATE): a transaction that
   * reads first and writes later could find another process's write in between and fail with
   * SQLITE_BUSY at once, where this one waits for the lock.
   */
  #write<T>(change: () => T): T {
    return this.#db.transaction(change).immediate();
  }

  #forget(fileId: number): void {
    this.#statements.deleteChunks.run(fileId);
    this.#statements.deleteFile.run(fileId);
  }

  #forgetPath(path: string): void {
    const row = this.#statements.fileByPath.get(path) as FileRow | undefined;
    if (row !== undefined) this.#forget(row.id);
  }
}

function toIndexedFile(row: FileRow): IndexedFile {
  return {
    id: row.id,
    path: row.path,
    chunker: row.chunker,
    size: row.size,
    fileHash: row.file_hash,
    chunkCount: row.chunk_count,
  };
}

/** Whether a complete indexed file is the one `stats` and `digest` describe. */
function sameContent(row: FileRow, stats: BigIntStats, digest: FileDigest): boolean {
  return (
    row.file_hash !== null && row.identity === identityOf(stats) && row.file_hash.equals(digest.fileHash)
  );
}
