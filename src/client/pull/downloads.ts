/**
 * The pull's records in the chunk index. A download is the index's record of a part file being
 * written: its journal of chunks written and verified, so that a killed pull resumes it; on
 * commit it becomes the record of the complete file. Files too small to journal are recorded
 * once complete, many in one transaction.
 */
import { closeSync, constants, fdatasyncSync, fstatSync, lstatSync, openSync } from "node:fs";
import { open } from "node:fs/promises";
import type { ChunkIndex, RecordedFile } from "../../store/chunk-index.js";
import { inodeOf } from "../../store/chunk-index.js";
import { writableOnlyByUs } from "../../store/private-file.js";
import type { ChunkRef, Entry, FileEnd } from "../../wire/messages.js";
import type { DownloadJournal } from "./chunk-planner.js";
import { isRunning, type PartFile } from "./destination.js";

/** Journal rows per transaction, and the longest a written chunk waits for its row (see record). */
const JOURNAL_BATCH = 256;
const JOURNAL_DELAY_MS = 50;
/**
 * Part files are synced at most this often (rows wait meanwhile): each sync forces the file's
 * dirty pages out, so fewer cost less, but rows that wait longer are lost to a SIGKILL and
 * fetched again (docs/decisions.md, "Journal durability").
 */
const JOURNAL_SYNC_INTERVAL_MS = 250;
/** Complete unjournaled files recorded per transaction. */
const RECORDS_PER_TRANSACTION = 256;

/** An interrupted pull's download for the same final path. */
export type FoundDownload =
  /** Of this same version of the file: its part file is written on. */
  | { kind: "resumable"; id: number; path: string }
  /** Of another version: a source of chunks, removed once the file is committed. */
  | { kind: "other-version"; id: number; path: string };

export class Downloads implements DownloadJournal {
  readonly #index: ChunkIndex;
  readonly #chunker: string;
  /** Written chunks not yet journaled (see record). */
  #unjournaled: JournalRow[] = [];
  /** Rows whose part files are being synced; journaled when the sync is done (see #flushDurably). */
  #syncing: JournalRow[] | undefined;
  #journalTimer: NodeJS.Timeout | undefined;
  /** When the last sync began (performance.now()). */
  #lastSyncAt = Number.NEGATIVE_INFINITY;
  /** An error of a journal transaction run after a sync, thrown to the next caller. */
  #journalError: unknown;
  /** Where each download of this pull writes: its part file, synced before its rows are journaled. */
  readonly #partPaths = new Map<number, string>();
  /** Complete unjournaled files waiting to be recorded. */
  #records: RecordedFile[] = [];

  constructor(index: ChunkIndex, chunker: string) {
    this.#index = index;
    this.#chunker = chunker;
  }

  has(downloadId: number, offset: number, hash: Buffer): boolean {
    return this.#index.hasChunkAt(downloadId, offset, hash);
  }

  /**
   * Journals a written chunk: at JOURNAL_BATCH rows or after JOURNAL_DELAY_MS, since a
   * transaction costs as much as ~100 rows (docs/decisions.md, "Journal batching"), and only once
   * the chunk's part file is synced (#flushDurably): a row must never outlive its bytes. A crash
   * loses at most the last quarter second's journal: those chunks are fetched again.
   */
  record(downloadId: number, chunk: ChunkRef): void {
    this.#throwJournalError();
    this.#unjournaled.push([downloadId, chunk]);
    if (this.#unjournaled.length >= JOURNAL_BATCH) this.#flushDurably();
    else this.#flushIn(JOURNAL_DELAY_MS);
  }

  /** A flush in `ms`, unless one is already due. */
  #flushIn(ms: number): void {
    this.#journalTimer ??= setTimeout(() => {
      this.#journalTimer = undefined;
      this.#flushDurably();
    }, ms);
  }

  /**
   * Journals every row now, syncing their part files first, blocking (the end of a pull, or its
   * failure: once, where a sync per batch would stall the event loop).
   */
  flushJournal(): void {
    clearTimeout(this.#journalTimer);
    this.#journalTimer = undefined;
    this.#throwJournalError();
    const rows = this.#takeRows(() => true);
    if (rows.length === 0) return;
    for (const path of this.#pathsOf(rows)) syncQuietly(path);
    this.#index.addChunks(rows);
  }

  /**
   * One batch: its part files fdatasync'ed off the event loop (a batch's files, not a call per
   * chunk), then its rows in one transaction. One batch syncs at a time, at most one a
   * JOURNAL_SYNC_INTERVAL_MS; rows recorded meanwhile wait for the next.
   */
  #flushDurably(): void {
    // A sync under way flushes again when it ends.
    if (this.#syncing !== undefined || this.#unjournaled.length === 0) return;
    const wait = this.#lastSyncAt + JOURNAL_SYNC_INTERVAL_MS - performance.now();
    if (wait > 0) {
      this.#flushIn(wait);
      return;
    }
    clearTimeout(this.#journalTimer);
    this.#journalTimer = undefined;
    this.#lastSyncAt = performance.now();
    const rows = this.#unjournaled;
    this.#unjournaled = [];
    this.#syncing = rows;
    void Promise.all(this.#pathsOf(rows).map(syncFileQuietly)).then(() => {
      // Rows finish() or flushJournal() took meanwhile are gone from the batch.
      const synced = this.#syncing ?? [];
      this.#syncing = undefined;
      try {
        if (synced.length > 0) this.#index.addChunks(synced);
      } catch (err) {
        this.#journalError = err;
        return;
      }
      if (this.#unjournaled.length >= JOURNAL_BATCH) this.#flushDurably();
      else if (this.#unjournaled.length > 0) this.#flushIn(JOURNAL_DELAY_MS);
    });
  }

  /** Removes and returns the waiting and syncing rows that `wanted` picks. */
  #takeRows(wanted: (downloadId: number) => boolean): JournalRow[] {
    const taken: JournalRow[] = [];
    const keep = (rows: JournalRow[]) =>
      rows.filter((row) => {
        if (!wanted(row[0])) return true;
        taken.push(row);
        return false;
      });
    if (this.#syncing !== undefined) this.#syncing = keep(this.#syncing);
    this.#unjournaled = keep(this.#unjournaled);
    return taken;
  }

  #pathsOf(rows: readonly JournalRow[]): string[] {
    const paths = new Set<string>();
    for (const [downloadId] of rows) {
      const path = this.#partPaths.get(downloadId);
      if (path !== undefined) paths.add(path);
    }
    return [...paths];
  }

  #throwJournalError(): void {
    const error = this.#journalError;
    if (error === undefined) return;
    this.#journalError = undefined;
    throw error;
  }

  /** The download an interrupted pull left for `finalPath`, unless another pull still runs it. */
  find(finalPath: string, entry: Entry): FoundDownload | undefined {
    const found = this.#index.findDownload(finalPath);
    if (found === undefined || (found.owner !== process.pid && isRunning(found.owner))) return undefined;
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
    if (kind === "resumable") this.#partPaths.set(found.id, found.path);
    return { kind, id: found.id, path: found.path };
  }

  /** Takes over a download for this process. */
  claim(downloadId: number): void {
    this.#index.claim(downloadId);
  }

  /** Starts the download of `entry` into `part`: its id. */
  start(part: PartFile, finalPath: string, entry: Entry): number {
    const stats = fstatSync(part.fd, { bigint: true });
    const download = { target: finalPath, version: versionOf(entry) };
    const id = this.#index.startFile(part.path, stats, this.#chunker, download);
    this.#partPaths.set(id, part.path);
    return id;
  }

  /** The download is committed at `finalPath`: next time it is a known copy. */
  finish(downloadId: number, finalPath: string, end: FileEnd, resumed: boolean): void {
    // Committed: its rows go in now, to become the complete file's; no sync, the journal's work is done.
    this.#throwJournalError();
    this.#partPaths.delete(downloadId);
    const rows = this.#takeRows((id) => id === downloadId);
    if (rows.length > 0) this.#index.addChunks(rows);
    // A journal with more rows than chunks holds a resumed version's leftovers: not vouched for.
    if (resumed && this.#index.chunkCount(downloadId) !== end.chunkCount) {
      this.#index.forget(downloadId);
      return;
    }
    this.#index.finishFile(downloadId, finalPath, lstatSync(finalPath, { bigint: true }), end);
  }

  /** An old copy kept in place whose metadata changed: its record follows it. */
  refresh(fileId: number, finalPath: string, end: FileEnd): void {
    this.#index.finishFile(fileId, finalPath, lstatSync(finalPath, { bigint: true }), end);
  }

  /** Drops a record; never throws (the index is a cache: a row it keeps is checked before use). */
  forget(fileId: number): void {
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
    if (this.#records.length === 0) return;
    const records = this.#records;
    this.#records = [];
    this.#index.recordFiles(records);
  }

  /** After a failure: what was written stays resumable, what was complete stays known. Never throws. */
  saveQuietly(): void {
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

/** A journal row: a download's id and a chunk written into its part file. */
type JournalRow = readonly [number, ChunkRef];

/**
 * fdatasync of a part file by path (the pull may have closed it meanwhile), never following a
 * symlink. A file gone or unreadable is skipped: a row for bytes that are not there is caught
 * when the download is found again (its inode) or its chunk is read.
 */
async function syncFileQuietly(path: string): Promise<void> {
  try {
    const file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      await file.datasync();
    } finally {
      await file.close();
    }
  } catch {
    // skipped (see above)
  }
}

/** syncFileQuietly, blocking. */
function syncQuietly(path: string): void {
  try {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // skipped (see syncFileQuietly)
  }
}

/** What a download is a download of: a changed remote file starts a new one. */
function versionOf(entry: Entry): string {
  return `${entry.size}:${entry.mtimeMs}`;
}
