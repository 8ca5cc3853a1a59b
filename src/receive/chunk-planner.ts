/**
 * Where each chunk of a file being written comes from, cheapest first:
 * 1. already in this file's resumed download (journaled, so written and verified): nothing to do;
 * 2. in the old copy at the destination, or anywhere else this machine holds it: copied locally,
 *    in runs of consecutive chunks, each verified against its hash once copied;
 * 3. otherwise fetched: batched into GET_CHUNKS requests, kept within a window of bytes in flight,
 *    verified on arrival and written at their offset by the data streams.
 * Every chunk written is journaled in its file's download, so that a killed pull resumes.
 */
import type { ChunkRef } from "../wire/messages.js";
import type { ChunkWrite } from "./chunk-write.js";
import { COPY_RUN_BYTES, type CopyResult, CopyRun, copyRun, type SourcePlace } from "./local-copies.js";
import type { ByteSource } from "./tally.js";
import type { Work } from "./work.js";

/** Chunks this machine holds in other files. */
export interface LocalChunks {
  /** Whether file `fileId` of the index holds a chunk with `hash` at `offset`. */
  hasChunkAt(fileId: number, offset: number, hash: Buffer): boolean;
  /** A file still as indexed holding the chunk with `hash`, other than `excludeFileId`. */
  find(hash: Buffer, excludeFileId: number | undefined): SourcePlace | undefined;
  /** A source whose bytes did not match: no longer trusted. */
  forget(fileId: number, path: string): void;
}

/** The data streams: fetch chunks, verified and written at their offset (the stream pool fits). */
export interface ChunkFetcher {
  fetch(chunks: ChunkWrite[]): Promise<void>;
  /** Bytes that may be requested and not yet written. */
  readonly windowBytes: number;
  /** Bytes worth one request. */
  readonly batchBytes: number;
}

/** Changed chunks fetched as deltas against the file's old copy (delta-fetcher.ts). */
export interface DeltaChunks {
  /** Queues `chunk` as a delta if it is worth one (its old copy read and signed); false: fetch it whole. */
  offer(file: PlannedFile, chunk: ChunkRef, outcome: DeltaOutcome): boolean;
  /** A promise while the deltas in flight hold all the memory they may. */
  room(): Promise<void> | undefined;
  flush(): void;
}

/** What became of a chunk asked for as a delta. */
export interface DeltaOutcome {
  /** Rebuilt, verified and written: `literalBytes` of it crossed the network, the rest was the old copy's. */
  rebuilt(file: PlannedFile, chunk: ChunkRef, literalBytes: number): void;
  /** Not rebuilt: fetched whole instead. */
  fetchWhole(file: PlannedFile, chunk: ChunkRef): void;
}

/** The journal of each download: which of its chunks are written and verified. */
export interface DownloadJournal {
  /** Whether the download's part file holds `chunk`, written and verified. */
  has(downloadId: number, chunk: ChunkRef): boolean;
  record(downloadId: number, chunk: ChunkRef): void;
}

/** A file's download: its id in the journal, and whether an interrupted pull began it. */
export interface Download {
  readonly id: number;
  readonly resumed: boolean;
}

/** A file being written, as the planner sees it. */
export interface PlannedFile {
  readonly wirePath: string;
  readonly finalPath: string;
  /** Its part file, open for reading and writing. */
  readonly fd: number;
  /** undefined: not journaled (no index, or too small). */
  readonly download: Download | undefined;
  /** False where the file is too small to look its chunks up. */
  readonly copiesLocally: boolean;
  /** Index ids of its old copy at the destination and of a download of another version. */
  readonly oldCopyId: number | undefined;
  readonly otherVersionId: number | undefined;
  /** Whether an old copy may be at its final path: changed chunks may come as deltas against it. */
  readonly deltaBase: boolean;
  onJournaled(chunks: number): void;
  onWritten(bytes: number, source: ByteSource): void;
}

export interface PlannerTally {
  readLocally(bytes: number): void;
  report(): void;
}

export interface PlannerOptions {
  local: LocalChunks | undefined;
  journal: DownloadJournal | undefined;
  fetcher: ChunkFetcher;
  work: Work;
  tally: PlannerTally;
  /** Deltas against old copies, where the host answers them. */
  delta?: DeltaChunks | undefined;
  /** Copies a run into the file open as `target` and verifies it (default: local-copies.ts). */
  copy?: (run: CopyRun, target: number, buffer: Buffer) => Promise<CopyResult>;
  /** Runs `flush` once a batch that is not full has waited long enough (default: BATCH_DELAY_MS). */
  scheduleFlush?: (flush: () => void) => void;
}

/** Chunks per GET_CHUNKS request, at most. */
const BATCH_CHUNKS = 1024;
/**
 * How long a batch that is not full waits for more chunks before the streams get it: a tree of
 * small files otherwise went out a few files a batch, each batch a message to a stream thread
 * and one back (docs/decisions.md, "Batches of small files").
 */
const BATCH_DELAY_MS = 4;
/** Local copies run at once, each with a COPY_RUN_BYTES buffer. */
const MAX_RUNNING_COPIES = 2;
/** Copy runs waiting; the manifest waits when more are queued. */
const MAX_QUEUED_COPIES = 4;

interface PlannedRun {
  run: CopyRun;
  file: PlannedFile;
}

export class ChunkPlanner {
  readonly #local: LocalChunks | undefined;
  readonly #journal: DownloadJournal | undefined;
  readonly #fetcher: ChunkFetcher;
  readonly #work: Work;
  readonly #tally: PlannerTally;
  readonly #copyRun: (run: CopyRun, target: number, buffer: Buffer) => Promise<CopyResult>;
  readonly #delta: DeltaChunks | undefined;
  readonly #deltaOutcome: DeltaOutcome = {
    rebuilt: (file, chunk, literalBytes) => this.#rebuilt(file, chunk, literalBytes),
    fetchWhole: (file, chunk) => {
      this.#enqueue(file, chunk);
      this.flush();
    },
  };
  readonly #scheduleFlush: (flush: () => void) => void;

  /** Chunks batched for the streams, and the file of each (kept apart: the streams get `#batch` as it is). */
  #batch: ChunkWrite[] = [];
  #batchFiles: PlannedFile[] = [];
  #batchBytes = 0;
  #flushScheduled = false;
  /** Bytes requested or batched and not yet written. */
  #inFlightBytes = 0;
  /** Consecutive local chunks of the file being described, not yet queued for copying. */
  #openRun: PlannedRun | undefined;
  readonly #copies: PlannedRun[] = [];
  readonly #copyBuffers: Buffer[] = [];
  #copiesRunning = 0;

  constructor(options: PlannerOptions) {
    this.#local = options.local;
    this.#journal = options.journal;
    this.#fetcher = options.fetcher;
    this.#work = options.work;
    this.#tally = options.tally;
    this.#copyRun = options.copy ?? copyRun;
    this.#delta = options.delta;
    this.#scheduleFlush = options.scheduleFlush ?? ((flush) => setTimeout(flush, BATCH_DELAY_MS));
  }

  /** Places a chunk of `file`; a promise when the next one must wait for room. */
  place(file: PlannedFile, chunk: ChunkRef): Promise<void> | undefined {
    const download = file.download;
    if (download?.resumed && this.#journal?.has(download.id, chunk)) {
      file.onJournaled(1);
      file.onWritten(chunk.size, "resumed");
      this.#tally.report();
      return undefined;
    }
    const local = file.copiesLocally ? this.#local : undefined;
    if (local !== undefined) {
      if (this.#extendRun(file, chunk, local)) return undefined;
      const source = this.#findSource(file, chunk, local);
      if (source !== undefined) return this.#addToRun(file, source, chunk);
    }
    if (file.deltaBase && this.#delta?.offer(file, chunk, this.#deltaOutcome)) return this.#delta.room();
    if (this.#mustWait(chunk.size)) return this.#fetchWhenRoom(file, chunk);
    this.#enqueue(file, chunk);
    return undefined;
  }

  /** The file is fully described: its open copy run is queued. */
  endFile(file: PlannedFile): Promise<void> | undefined {
    const open = this.#openRun;
    if (open?.file !== file) return undefined;
    this.#openRun = undefined;
    return this.#queue(open);
  }

  /** Hands the batch to the data streams, which send it as one GET_CHUNKS request. */
  flush(): void {
    this.#delta?.flush();
    if (this.#batch.length === 0 || this.#work.failed) return;
    const batch = this.#batch;
    const files = this.#batchFiles;
    this.#batch = [];
    this.#batchFiles = [];
    this.#batchBytes = 0;
    const fetching = this.#fetcher.fetch(batch).then(() => this.#written(batch, files));
    this.#work.track(fetching);
  }

  /** Whether the chunk goes on the run of local chunks that the previous one started. */
  #extendRun(file: PlannedFile, chunk: ChunkRef, local: LocalChunks): boolean {
    const open = this.#openRun;
    if (open?.file !== file || !open.run.fits(chunk)) return false;
    if (!local.hasChunkAt(open.run.sourceFileId, open.run.nextSourceOffset, chunk.hash)) return false;
    open.run.push(chunk);
    return true;
  }

  /** The old copy at the same offset, or any place this machine holds the chunk. */
  #findSource(file: PlannedFile, chunk: ChunkRef, local: LocalChunks): SourcePlace | undefined {
    const oldCopyId = file.oldCopyId;
    if (oldCopyId !== undefined && local.hasChunkAt(oldCopyId, chunk.offset, chunk.hash)) {
      return { fileId: oldCopyId, path: file.finalPath, offset: chunk.offset };
    }
    return local.find(chunk.hash, file.download?.id);
  }

  #addToRun(file: PlannedFile, source: SourcePlace, chunk: ChunkRef): Promise<void> | undefined {
    const open = this.#openRun;
    if (
      open?.file === file &&
      open.run.fits(chunk) &&
      open.run.sourceFileId === source.fileId &&
      open.run.nextSourceOffset === source.offset
    ) {
      open.run.push(chunk);
      return undefined;
    }
    this.#openRun = { run: new CopyRun(source, chunk), file };
    return open === undefined ? undefined : this.#queue(open);
  }

  /** Queues a copy run, waiting while the queue is full. */
  #queue(planned: PlannedRun): Promise<void> | undefined {
    if (this.#copies.length >= MAX_QUEUED_COPIES) return this.#queueWhenRoom(planned);
    this.#copies.push(planned);
    this.#startCopies();
    return undefined;
  }

  async #queueWhenRoom(planned: PlannedRun): Promise<void> {
    while (this.#copies.length >= MAX_QUEUED_COPIES) await this.#waitForProgress();
    this.#copies.push(planned);
    this.#startCopies();
  }

  #startCopies(): void {
    while (this.#copiesRunning < MAX_RUNNING_COPIES && !this.#work.failed) {
      const next = this.#copies.shift();
      if (next === undefined) return;
      this.#copiesRunning++;
      const buffer = this.#copyBuffers.pop() ?? Buffer.allocUnsafe(COPY_RUN_BYTES);
      this.#work.track(
        this.#copy(next, buffer).finally(() => {
          this.#copyBuffers.push(buffer);
          this.#copiesRunning--;
          this.#startCopies();
        }),
      );
    }
  }

  async #copy({ run, file }: PlannedRun, buffer: Buffer): Promise<void> {
    const { copied, mismatched } = await this.#copyRun(run, file.fd, buffer);
    this.#work.throwIfFailed();
    this.#tally.readLocally(run.bytes);
    const download = file.download;
    if (download !== undefined && copied.length > 0) {
      for (const chunk of copied) this.#journal?.record(download.id, chunk);
      file.onJournaled(copied.length);
    }
    const source =
      run.sourceFileId === file.oldCopyId
        ? "existing"
        : run.sourceFileId === file.otherVersionId
          ? "resumed"
          : "index";
    for (const chunk of copied) file.onWritten(chunk.size, source);
    this.#tally.report();
    if (mismatched.length > 0) {
      // The source changed or its index rows were wrong: fetch those chunks, forget the source.
      this.#local?.forget(run.sourceFileId, run.sourcePath);
      for (const chunk of mismatched) this.#enqueue(file, chunk);
      this.flush();
    }
  }

  /** Whether a chunk of `size` must wait: the window is full, or the batch is. */
  #mustWait(size: number): boolean {
    return (
      (this.#inFlightBytes > 0 && this.#inFlightBytes + size > this.#fetcher.windowBytes) ||
      this.#batch.length >= BATCH_CHUNKS
    );
  }

  async #fetchWhenRoom(file: PlannedFile, chunk: ChunkRef): Promise<void> {
    while (this.#mustWait(chunk.size)) await this.#waitForProgress();
    this.#enqueue(file, chunk);
  }

  #waitForProgress(): Promise<void> {
    this.#work.throwIfFailed();
    this.flush();
    return this.#work.next();
  }

  #enqueue(file: PlannedFile, chunk: ChunkRef): void {
    const { hash, offset, size } = chunk;
    this.#batch.push({ hash, offset, size, path: file.wirePath, fd: file.fd });
    this.#batchFiles.push(file);
    this.#batchBytes += size;
    this.#inFlightBytes += size;
    if (this.#batchBytes >= this.#fetcher.batchBytes || this.#batch.length >= BATCH_CHUNKS) {
      this.flush();
    } else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      this.#scheduleFlush(() => {
        this.#flushScheduled = false;
        this.flush();
      });
    }
  }

  /** A chunk rebuilt from its old copy and literal bytes, verified and written: journaled and accounted. */
  #rebuilt(file: PlannedFile, chunk: ChunkRef, literalBytes: number): void {
    const download = file.download;
    if (download !== undefined) {
      this.#journal?.record(download.id, chunk);
      file.onJournaled(1);
    }
    file.onWritten(literalBytes, "network");
    file.onWritten(chunk.size - literalBytes, "existing");
    this.#tally.report();
  }

  /** Journals and accounts a batch the streams have verified and written. */
  #written(batch: readonly ChunkWrite[], files: readonly PlannedFile[]): void {
    for (let i = 0; i < batch.length; i++) {
      const download = files[i]?.download;
      const chunk = batch[i];
      if (download === undefined || chunk === undefined) continue;
      this.#journal?.record(download.id, chunk);
      files[i]?.onJournaled(1);
    }
    for (let i = 0; i < batch.length; i++) {
      const size = batch[i]?.size ?? 0;
      this.#inFlightBytes -= size;
      files[i]?.onWritten(size, "network");
    }
    this.#tally.report();
  }
}
