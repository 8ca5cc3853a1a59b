/**
 * The pull's records in the chunk index. A download is the index's record of a part file being
 * written: its journal of chunks written and verified, so that a killed pull resumes it; on
 * commit it becomes the record of the complete file. Files too small to journal are recorded
 * once complete, many in one transaction.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from "node:fs";
import { hashBytes } from "../chunking/hash.js";
import type { ChunkIndex, FinishedFile, RecordedFile } from "../store/chunk-index.js";
import { bootId, inodeOf } from "../store/chunk-index.js";
import { writableOnlyByUs } from "../store/private-file.js";
import { type ChunkRef, type Entry, type FileEnd, MAX_CHUNK_SIZE } from "../wire/messages.js";
import type { DownloadJournal } from "./chunk-planner.js";
import type { PartFile } from "./destination.js";
import { isRunning } from "./part-names.js";

/** Journal rows per transaction, and the longest a written chunk waits for its row (see record). */
const JOURNAL_BATCH = 256;
const JOURNAL_DELAY_MS = 50;
/** Complete unjournaled files recorded per transaction. */
const RECORDS_PER_TRANSACTION = 256;

/** An interrupted pull's download for the same final path. */
export type FoundDownload =
  /** Of this same version of the file: its part file is written on. */
  | { kind: "resumable"; id: number; path: string }
  /** Of another version: a source of chunks, removed once the file is committed. */
  | { kind: "other-version"; id: number; path: string };

/**
 * Downloads a transfer in this process is writing: another transfer here of the same file (a
 * host's concurrent uploads to one path) starts its own part file instead of writing into the
 * same one; each is committed by rename, the last complete one winning.
 */
const WRITING_HERE = new Set<number>();

export class Downloads implements DownloadJournal {
  readonly #index: ChunkIndex;
  readonly #chunker: string;
  /** Written chunks not yet journaled (see record). */
  #unjournaled: Array<readonly [number, ChunkRef]> = [];
  #journalTimer: NodeJS.Timeout | undefined;
  /** Complete unjournaled files waiting to be recorded. */
  #records: RecordedFile[] = [];
  /** Kept old copies whose records wait to follow their new metadata. */
  #refreshed: FinishedFile[] = [];
  /**
   * Part files of downloads begun in another boot, open for reading: their journal may vouch
   * for bytes a crash kept from the disk, so each chunk is read and hashed before it counts.
   */
  readonly #unsure = new Map<number, number>();
  /** The downloads this pull writes (WRITING_HERE), let go of as each ends or the pull fails. */
  readonly #held = new Set<number>();
  /** Where a chunk of an unsure part file is read back to be hashed (allocated on first use). */
  #readBack: Buffer | undefined;

  constructor(index: ChunkIndex, chunker: string) {
    this.#index = index;
    this.#chunker = chunker;
  }

  has(downloadId: number, chunk: ChunkRef): boolean {
    if (!this.#index.hasChunkAt(downloadId, chunk.offset, chunk.hash)) return false;
    const fd = this.#unsure.get(downloadId);
    if (fd === undefined) return true;
    this.#readBack ??= Buffer.allocUnsafe(MAX_CHUNK_SIZE);
    return holdsChunk(fd, chunk, this.#readBack);
  }

  /**
   * Journals a written chunk, JOURNAL_BATCH rows a transaction or after JOURNAL_DELAY_MS, since a
   * transaction costs as much as ~100 rows (docs/decisions.md, "Journal batching"). A crash
   * loses at most the last moment's journal: those chunks are fetched again.
   */
  record(downloadId: number, chunk: ChunkRef): void {
    this.#unjournaled.push([downloadId, chunk]);
    if (this.#unjournaled.length >= JOURNAL_BATCH) this.flushJournal();
    else this.#journalTimer ??= setTimeout(() => this.flushJournal(), JOURNAL_DELAY_MS);
  }

  flushJournal(): void {
    clearTimeout(this.#journalTimer);
    this.#journalTimer = undefined;
    if (this.#unjournaled.length === 0) return;
    const entries = this.#unjournaled;
    this.#unjournaled = [];
    this.#index.addChunks(entries);
  }

  /** The download an interrupted pull left for `finalPath`, unless another pull still runs it. */
  find(finalPath: string, entry: Entry): FoundDownload | undefined {
    const found = this.#index.findDownload(finalPath);
    if (found === undefined || WRITING_HERE.has(found.id)) return undefined;
    if (found.owner !== process.pid && isRunning(found.owner)) return undefined;
    let inode: string | undefined;
    try {
      const stats = lstatSync(found.path, { bigint: true });
      // Journal rows vouch for bytes by device and inode only: a file another user can write is not ours to resume.
      if (stats.isFile() && writableOnlyByUs(stats)) inode = inodeOf(stats);
    } catch {
      // gone
    }
    if (inode !== found.inode) {
      this.#index.forget(found.id);
      return undefined;
    }
    const kind = found.version === versionOf(entry) ? "resumable" : "other-version";
    if (kind === "resumable" && (found.bootId === null || found.bootId !== bootId())) {
      this.#checkEveryChunk(found.id, found.path, found.inode);
    }
    return { kind, id: found.id, path: found.path };
  }

  /** Opens the part file to read chunks back: the file the journal names (by inode), or none. */
  #checkEveryChunk(downloadId: number, partPath: string, inode: string): void {
    let fd: number | undefined;
    try {
      fd = openSync(partPath, constants.O_RDONLY | constants.O_NOFOLLOW);
      if (inodeOf(fstatSync(fd, { bigint: true })) === inode) {
        this.#unsure.set(downloadId, fd);
        return;
      }
    } catch {
      // gone, or not a file
    }
    if (fd !== undefined) closeSync(fd);
    this.#index.forget(downloadId);
  }

  /** Closes what `downloadId`'s checks held open. */
  #stopChecking(downloadId: number): void {
    const fd = this.#unsure.get(downloadId);
    if (fd === undefined) return;
    this.#unsure.delete(downloadId);
    closeSync(fd);
  }

  /** Takes over a download for this process. */
  claim(downloadId: number): void {
    this.#index.claim(downloadId);
    this.#writing(downloadId);
  }

  /** Starts the download of `entry` into `part`: its id. */
  start(part: PartFile, finalPath: string, entry: Entry): number {
    const stats = fstatSync(part.fd, { bigint: true });
    const download = { target: finalPath, version: versionOf(entry) };
    const id = this.#index.startFile(part.path, stats, this.#chunker, download);
    this.#writing(id);
    return id;
  }

  #writing(downloadId: number): void {
    WRITING_HERE.add(downloadId);
    this.#held.add(downloadId);
  }

  #done(downloadId: number): void {
    WRITING_HERE.delete(downloadId);
    this.#held.delete(downloadId);
  }

  /** The download is committed at `finalPath`: next time it is a known copy. */
  finish(downloadId: number, finalPath: string, end: FileEnd, resumed: boolean): void {
    this.#done(downloadId);
    this.#stopChecking(downloadId);
    this.flushJournal();
    // A journal with more rows than chunks holds a resumed version's leftovers: not vouched for.
    if (resumed && this.#index.chunkCount(downloadId) !== end.chunkCount) {
      this.#index.forget(downloadId);
      return;
    }
    this.#index.finishFile(downloadId, finalPath, lstatSync(finalPath, { bigint: true }), end);
  }

  /**
   * An old copy kept in place whose metadata changed: its record follows it, in the next
   * transaction (a pull into an older release refreshes most of its files).
   */
  refresh(fileId: number, finalPath: string, end: FileEnd): void {
    this.#refreshed.push({
      fileId,
      path: finalPath,
      stats: lstatSync(finalPath, { bigint: true }),
      digest: end,
    });
    if (this.#refreshed.length >= RECORDS_PER_TRANSACTION) this.#flushRefreshed();
  }

  #flushRefreshed(): void {
    if (this.#refreshed.length === 0) return;
    const refreshed = this.#refreshed;
    this.#refreshed = [];
    this.#index.finishFiles(refreshed);
  }

  /** Drops a record; never throws (the index is a cache: a row it keeps is checked before use). */
  forget(fileId: number): void {
    this.#done(fileId);
    try {
      this.#index.forget(fileId);
    } catch {
      // kept: checked before use
    }
  }

  /** Whether `path` is a part file the index keeps for resuming. */
  isKept(path: string): boolean {
    return this.#index.isDownload(path);
  }

  /** A complete file too small to journal, with its chunks: recorded in the next transaction. */
  recordComplete(finalPath: string, end: FileEnd, chunks: readonly ChunkRef[]): void {
    const stats = lstatSync(finalPath, { bigint: true });
    this.#records.push({ path: finalPath, stats, chunker: this.#chunker, digest: end, chunks });
    if (this.#records.length >= RECORDS_PER_TRANSACTION) this.flushRecords();
  }

  flushRecords(): void {
    this.#flushRefreshed();
    if (this.#records.length === 0) return;
    const records = this.#records;
    this.#records = [];
    this.#index.recordFiles(records);
  }

  /** After a failure: what was written stays resumable, what was complete stays known. Never throws. */
  saveQuietly(): void {
    for (const downloadId of [...this.#held]) this.#done(downloadId);
    for (const downloadId of [...this.#unsure.keys()]) this.#stopChecking(downloadId);
    try {
      this.flushJournal();
    } catch {
      clearTimeout(this.#journalTimer);
    }
    try {
      this.flushRecords();
    } catch {
      // not recorded: a later pull reads them again
    }
  }
}

/** What a download is a download of: a changed remote file starts a new one. */
function versionOf(entry: Entry): string {
  return `${entry.size}:${entry.mtimeMs}`;
}

/** Whether the part file at `fd` holds `chunk`'s bytes (read back and hashed). */
function holdsChunk(fd: number, chunk: ChunkRef, buffer: Buffer): boolean {
  if (chunk.size > buffer.length) return false;
  const bytes = buffer.subarray(0, chunk.size);
  try {
    return (
      readSync(fd, bytes, 0, chunk.size, chunk.offset) === chunk.size && hashBytes(bytes).equals(chunk.hash)
    );
  } catch {
    return false;
  }
}
