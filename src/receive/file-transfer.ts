/**
 * One file of a pull, from its FILE_BEGIN to its commit, as a state machine whose phase holds
 * only what that phase has:
 * - probing: the file may be unchanged from its old copy; its chunks are only hashed (by the
 *   walker) until its end, where the file hash says whether anything needs writing;
 * - writing: chunks are placed (chunk-planner.ts) into its part file as they are described;
 * - sealed: every chunk described and checked, the last ones still being written;
 * - committing: renamed into place, recorded in the index;
 * - complete.
 * A file that is not probed starts writing at once: into the part file an interrupted pull left
 * (resumed), or a new one.
 */
import { UNINDEXED_FILE_BYTES, UNJOURNALED_FILE_BYTES } from "../chunking/thresholds.js";
import { closeQuietly } from "../engine/file-io.js";
import { toTeleportError } from "../errors.js";
import type { ChunkRef, FileEnd } from "../wire/messages.js";
import type { ChunkPlanner, Download, PlannedFile } from "./chunk-planner.js";
import { type Destination, type FileMetadata, type PartFile, removeQuietly } from "./destination.js";
import type { Downloads } from "./downloads.js";
import type { IndexedChunks } from "./local-copies.js";
import type { ManifestEvent } from "./manifest-event.js";
import {
  type ChunkReceiver,
  deliver,
  type FileReceiver,
  replayChunks,
  type WalkedFile,
} from "./manifest-walker.js";
import type { OldCopies } from "./old-copies.js";
import type { FileReservation } from "./reservation.js";
import type { ByteSource, TransferTally } from "./tally.js";
import type { Work } from "./work.js";

/**
 * Files from this size have the blocks of their runs of chunks reserved as their data arrives
 * (reservation.ts; fallocate through the native addon): not for the many small files of a tree.
 */
const PREALLOCATE_FROM_BYTES = 1024 * 1024;

/** The chunk index's part in a pull, when there is one. */
export interface IndexedPull {
  downloads: Pick<Downloads, "find" | "claim" | "start" | "finish" | "refresh" | "forget" | "recordComplete">;
  oldCopies: Pick<OldCopies, "hashOf" | "indexed">;
  localChunks: Pick<IndexedChunks, "changed">;
}

/** What every file of a pull shares. */
export interface TransferContext {
  readonly destination: Pick<
    Destination,
    "mayExist" | "createPartFile" | "reopenPartFile" | "reservation" | "clearRange" | "commit" | "keepOldCopy"
  >;
  readonly planner: Pick<ChunkPlanner, "place" | "endFile">;
  readonly index: IndexedPull | undefined;
  readonly tally: TransferTally;
  readonly work: Pick<Work, "fail" | "throwIfFailed">;
  /** Whether files get their extended attributes (`--xattrs`, where both sides can). */
  readonly xattrs: boolean;
  /** The manifest of one file, asked for again. */
  manifestOf(wirePath: string): AsyncIterable<ManifestEvent>;
  /** The file is complete under its name (`withXattrs`: extended attributes were set on it). */
  finished(transfer: FileTransfer, withXattrs: boolean): void;
}

export type TransferPhase =
  | { kind: "probing"; oldCopyHash: Buffer }
  | { kind: "writing"; write: PartWrite }
  | { kind: "sealed"; write: PartWrite; end: FileEnd }
  | { kind: "committing"; write: PartWrite }
  | { kind: "complete" };

/** An interrupted pull's download of another version of the file: a source of chunks. */
interface OtherVersion {
  id: number;
  path: string;
}

/** How a file starts, found by FileTransfer.start. */
interface Start {
  /** The file hash of an old copy of the same size: the file is probed against it. */
  oldCopyHash: Buffer | undefined;
  /** The old copy's id in the index: a source of chunks at their offsets. */
  oldCopyId: number | undefined;
  resumed: { partFile: PartFile; id: number } | undefined;
  otherVersion: OtherVersion | undefined;
  /** An old copy may be at the final path: a base for deltas of changed chunks. */
  deltaBase: boolean;
}

export class FileTransfer implements FileReceiver {
  readonly file: WalkedFile;
  readonly #context: TransferContext;
  readonly #metadata: FileMetadata;
  /** Up to UNINDEXED_FILE_BYTES (with an index): never looked up or recorded, never copied from elsewhere. */
  readonly #unindexed: boolean;
  /**
   * The chunk list of a file under UNJOURNALED_FILE_BYTES (with an index): recorded once it is
   * complete, or placed when an unindexed file turns out changed.
   */
  readonly #keptChunks: ChunkRef[] | undefined;
  readonly #otherVersion: OtherVersion | undefined;
  readonly #oldCopyId: number | undefined;
  readonly #deltaBase: boolean;
  #phase: TransferPhase;
  /** Bytes in place that crossed the network, and that were on this machine (for file-done). */
  bytesMoved = 0;
  bytesReused = 0;

  /**
   * Finds how the file starts: probing its old copy, resuming a download, or a new part file.
   * A promise only where the index must be asked about an old copy (a file over UNINDEXED_FILE_BYTES).
   */
  static start(file: WalkedFile, context: TransferContext): FileTransfer | Promise<FileTransfer> {
    const { entry, finalPath, folder } = file;
    const index = context.index;
    const start: Start = {
      oldCopyHash: undefined,
      oldCopyId: undefined,
      resumed: undefined,
      otherVersion: undefined,
      deltaBase: false,
    };
    if (index === undefined) return new FileTransfer(file, context, start);
    if (entry.size <= UNINDEXED_FILE_BYTES) {
      start.deltaBase = context.destination.mayExist(folder, finalPath);
      if (start.deltaBase) start.oldCopyHash = index.oldCopies.hashOf(finalPath, entry.size);
      return new FileTransfer(file, context, start);
    }
    // Only journaled files leave a download to resume.
    const found = entry.size < UNJOURNALED_FILE_BYTES ? undefined : index.downloads.find(finalPath, entry);
    if (found?.kind === "other-version") start.otherVersion = { id: found.id, path: found.path };
    if (found?.kind === "resumable") {
      const partFile = context.destination.reopenPartFile(found.path);
      if (partFile !== undefined) {
        index.downloads.claim(found.id);
        start.resumed = { partFile, id: found.id };
      }
    }
    start.deltaBase = context.destination.mayExist(folder, finalPath);
    if (!start.deltaBase) return new FileTransfer(file, context, start);
    return FileTransfer.#againstOldCopy(file, context, start, index);
  }

  /** A file whose old copy may be indexed: its id, and its file hash to probe against. */
  static async #againstOldCopy(
    file: WalkedFile,
    context: TransferContext,
    start: Start,
    index: IndexedPull,
  ): Promise<FileTransfer> {
    const indexed = await index.oldCopies.indexed(file.finalPath);
    start.oldCopyId = indexed?.id;
    if (indexed?.fileHash && indexed.size === file.entry.size && start.resumed === undefined)
      start.oldCopyHash = indexed.fileHash;
    return new FileTransfer(file, context, start);
  }

  private constructor(file: WalkedFile, context: TransferContext, start: Start) {
    const { entry } = file;
    const indexed = context.index !== undefined;
    this.file = file;
    this.#context = context;
    this.#metadata = { entry, xattrs: context.xattrs ? (entry.xattrs ?? []) : undefined };
    this.#unindexed = indexed && entry.size <= UNINDEXED_FILE_BYTES;
    this.#keptChunks = indexed && entry.size < UNJOURNALED_FILE_BYTES ? [] : undefined;
    this.#otherVersion = start.otherVersion;
    this.#oldCopyId = start.oldCopyId;
    this.#deltaBase = start.deltaBase;
    context.tally.announced(entry.size);
    this.#phase =
      start.oldCopyHash === undefined
        ? { kind: "writing", write: this.#startWriting(start.resumed) }
        : { kind: "probing", oldCopyHash: start.oldCopyHash };
  }

  /** Whether its chunks are being placed (not probed against an old copy, not yet complete). */
  get writing(): boolean {
    return this.#phase.kind === "writing";
  }

  onChunks(chunks: readonly ChunkRef[]): void {
    const phase = this.#phase;
    if (phase.kind === "writing") phase.write.reservation?.announce(chunks);
  }

  onChunk(chunk: ChunkRef): Promise<void> | undefined {
    this.#keptChunks?.push(chunk);
    const phase = this.#phase;
    return phase.kind === "writing" ? phase.write.onChunk(chunk) : undefined;
  }

  onHole(start: number, end: number): void {
    const phase = this.#phase;
    if (phase.kind === "writing") phase.write.onHole(start, end);
  }

  /**
   * The file is described: unchanged, it is kept; changed after all, its chunks are placed now.
   * A promise only when that must wait (a probed file that changed, a full copy queue).
   */
  onEnd(end: FileEnd): Promise<void> | undefined {
    const phase = this.#phase;
    if (phase.kind === "probing") {
      if (phase.oldCopyHash.equals(end.fileHash)) {
        this.#keep(end);
        return undefined;
      }
      return this.#writeChanged(end);
    }
    if (phase.kind !== "writing") return undefined;
    const queued = this.#context.planner.endFile(phase.write);
    if (queued !== undefined) return queued.then(() => this.#seal(phase.write, end));
    this.#seal(phase.write, end);
    return undefined;
  }

  /** A probed file that differs from its old copy after all: its chunks are placed now. */
  async #writeChanged(end: FileEnd): Promise<void> {
    const write = this.#startWriting(undefined);
    this.#phase = { kind: "writing", write };
    if (this.#unindexed) await this.#placeKeptChunks(write);
    else await replayChunks(this.#context.manifestOf(this.file.entry.path), this.file.entry, end, write);
    const queued = this.#context.planner.endFile(write);
    if (queued !== undefined) await queued;
    this.#seal(write, end);
  }

  #seal(write: PartWrite, end: FileEnd): void {
    this.#phase = { kind: "sealed", write, end };
    this.#maybeCommit();
  }

  /** Bytes of the file in place: committed once the last are, after its end. */
  onWritten(bytes: number, source: ByteSource): void {
    this.#context.tally.written(bytes, source);
    if (source === "network") this.bytesMoved += bytes;
    else if (source !== "hole") this.bytesReused += bytes;
    this.#maybeCommit();
  }

  /** After a failure: its part file stays if its download holds chunks to resume, else goes. */
  abandon(): void {
    const phase = this.#phase;
    if (phase.kind === "probing" || phase.kind === "complete") return;
    const { write } = phase;
    write.reservation?.release();
    if (phase.kind !== "committing") closeQuietly(write.fd);
    if (write.journaled > 0) return;
    removeQuietly(write.partFile.path);
    if (write.download !== undefined) this.#context.index?.downloads.forget(write.download.id);
  }

  /** The part file the chunks go into: the resumed download's, or a new one. */
  #startWriting(resumed: { partFile: PartFile; id: number } | undefined): PartWrite {
    const { destination, index } = this.#context;
    let partFile: PartFile;
    let download: Download | undefined;
    if (resumed !== undefined) {
      partFile = resumed.partFile;
      download = { id: resumed.id, resumed: true };
    } else {
      partFile = destination.createPartFile(this.file.finalPath, this.file.entry.mode);
      const journaled = index !== undefined && this.#keptChunks === undefined;
      if (journaled)
        download = {
          id: index.downloads.start(partFile, this.file.finalPath, this.file.entry),
          resumed: false,
        };
    }
    const reserved = resumed === undefined && this.file.entry.size >= PREALLOCATE_FROM_BYTES;
    const sources = {
      reservation: reserved ? destination.reservation(partFile, this.file.finalPath) : undefined,
      copiesLocally: !this.#unindexed,
      oldCopyId: this.#oldCopyId,
      otherVersionId: this.#otherVersion?.id,
      deltaBase: this.#deltaBase,
    };
    return new PartWrite(this, this.#context, partFile, download, sources);
  }

  /** An unindexed file's chunks, a handful at most, kept while it was probed: placed now. */
  async #placeKeptChunks(write: PartWrite): Promise<void> {
    const chunks = this.#keptChunks ?? [];
    await deliver(write, chunks, 0);
    const last = chunks.at(-1);
    const end = last === undefined ? 0 : last.offset + last.size;
    if (end < this.file.entry.size) write.onHole(end, this.file.entry.size);
  }

  #maybeCommit(): void {
    const phase = this.#phase;
    if (phase.kind !== "sealed" || phase.write.written !== this.file.entry.size) return;
    this.#phase = { kind: "committing", write: phase.write };
    this.#commit(phase.write, phase.end);
  }

  /**
   * The file appears under its name only now, complete and verified. Synchronous, like the calls
   * it makes: its failure fails the pull, without a promise per file to say so.
   */
  #commit(write: PartWrite, end: FileEnd): void {
    const { destination, work } = this.#context;
    try {
      write.reservation?.release();
      const size = write.download?.resumed === true || write.sparse;
      const xattrsSet = destination.commit(write.partFile, this.file.finalPath, this.#metadata, size, () =>
        work.throwIfFailed(),
      );
      this.#record(write, end);
      this.#done(xattrsSet);
    } catch (err) {
      work.fail(toTeleportError(err));
    }
  }

  /** The file now at its final path is what the index says it is: next time it is a known copy. */
  #record(write: PartWrite, end: FileEnd): void {
    const index = this.#context.index;
    if (index === undefined) return;
    const { finalPath } = this.file;
    index.localChunks.changed(finalPath);
    if (this.#unindexed) return;
    if (this.#keptChunks !== undefined) index.downloads.recordComplete(finalPath, end, this.#keptChunks);
    else if (write.download !== undefined)
      index.downloads.finish(write.download.id, finalPath, end, write.download.resumed);
  }

  /** The old copy holds every byte: kept, with its metadata brought up to date. */
  #keep(end: FileEnd): void {
    const { tally, work } = this.#context;
    this.#phase = { kind: "complete" };
    tally.written(this.file.entry.size, "existing");
    this.bytesReused = this.file.entry.size;
    tally.report();
    try {
      this.#keepOldCopy(end);
    } catch (err) {
      work.fail(toTeleportError(err));
    }
  }

  #keepOldCopy(end: FileEnd): void {
    const { finalPath } = this.file;
    const kept = this.#context.destination.keepOldCopy(finalPath, this.#metadata);
    const index = this.#context.index;
    if (kept !== "as-it-was" && index !== undefined) {
      if (this.#oldCopyId !== undefined) index.downloads.refresh(this.#oldCopyId, finalPath, end);
      index.localChunks.changed(finalPath);
    }
    this.#done(kept === "metadata-and-xattrs-set");
  }

  #done(withXattrs: boolean): void {
    const other = this.#otherVersion;
    if (other !== undefined) {
      removeQuietly(other.path);
      this.#context.index?.downloads.forget(other.id);
    }
    this.#phase = { kind: "complete" };
    this.#context.finished(this, withXattrs);
  }
}

/** The part file being written, and its download: what the planner places chunks for. */
class PartWrite implements PlannedFile, ChunkReceiver {
  readonly wirePath: string;
  readonly finalPath: string;
  readonly fd: number;
  readonly copiesLocally: boolean;
  readonly oldCopyId: number | undefined;
  readonly otherVersionId: number | undefined;
  readonly deltaBase: boolean;
  /** Blocks reserved as data arrives, for a large new part file. */
  readonly reservation: FileReservation | undefined;
  written = 0;
  /** Chunks recorded in the journal: a failed pull keeps the part file only if some are. */
  journaled = 0;
  /** Whether the file has holes: its part file is then sized at commit. */
  sparse = false;
  readonly #transfer: FileTransfer;
  readonly #context: TransferContext;

  constructor(
    transfer: FileTransfer,
    context: TransferContext,
    readonly partFile: PartFile,
    readonly download: Download | undefined,
    sources: {
      reservation: FileReservation | undefined;
      copiesLocally: boolean;
      oldCopyId: number | undefined;
      otherVersionId: number | undefined;
      deltaBase: boolean;
    },
  ) {
    this.reservation = sources.reservation;
    this.copiesLocally = sources.copiesLocally;
    this.oldCopyId = sources.oldCopyId;
    this.otherVersionId = sources.otherVersionId;
    this.deltaBase = sources.deltaBase;
    this.#transfer = transfer;
    this.#context = context;
    this.wirePath = transfer.file.entry.path;
    this.finalPath = transfer.file.finalPath;
    this.fd = partFile.fd;
  }

  onChunk(chunk: ChunkRef): Promise<void> | undefined {
    return this.#context.planner.place(this, chunk);
  }

  /**
   * A hole of a sparse file: nothing to fetch or write (a resumed download has it punched, in
   * case an older version had data there), and a hole at the destination.
   */
  onHole(start: number, end: number): void {
    this.sparse = true;
    if (this.download?.resumed === true) this.#context.destination.clearRange(this.partFile, start, end);
    this.onWritten(end - start, "hole");
    this.#context.tally.report();
  }

  onJournaled(chunks: number): void {
    this.journaled += chunks;
  }

  onWritten(bytes: number, source: ByteSource): void {
    this.written += bytes;
    this.reservation?.written(bytes);
    this.#transfer.onWritten(bytes, source);
  }
}
