/**
 * What a pull is asked to do (PullOptions), what it tells while running (PullEvent) and what
 * it reports at the end (PullSummary), with the Tally that counts into the summary.
 */
import type { ErrorCode, TeleportError } from "../../errors.js";
import type { OpenFolder } from "../../platform/directory-io.js";
import type { RemovalFailure } from "../../platform/remove-beneath.js";
import type { ByteSource, TransferTally } from "../../receive/tally.js";
import type { ChunkIndex } from "../../store/chunk-index.js";
import type { StateFolder } from "../../store/state-folder.js";
import {
  PATH_KINDS,
  type PathKind,
  pathOf,
  type TransportCounts,
  type TransportKind,
} from "../../transport/transport.js";
import type { FilterRule } from "../../wire/messages.js";
import type { CompressionPolicy } from "../pool/compression-policy.js";
import type { DataStreamFactory } from "../pool/data-streams.js";
import type { PoolReport, StreamStats } from "../pool/stream-pool.js";

export interface PullOptions {
  /** File or folder inside the share; the whole share when empty. */
  remotePath?: string;
  /** Local folder the file or folder is pulled into. */
  dest: string;
  /**
   * `dest` already open, held by the caller (who closes it once the pull has ended): every name
   * is made beneath this descriptor and `dest` is never opened by its path (an upload's folder,
   * push/upload-folder.ts).
   */
  destFolder?: OpenFolder;
  signal?: AbortSignal;
  /** Told how the pull goes (PullEvent); runs on the pull's thread, so a slow handler slows it. */
  onProgress?: (event: PullEvent) => void;
  /** Chunk bytes requested and not yet written, at least (the pool grows it to the path). */
  windowBytes?: number;
  /** Data streams (connections, spread over a thread per core); tuned to the path when unset. */
  streams?: number;
  /** Chunk bytes per second the data streams may receive, all together (`pull --bwlimit`); unlimited when unset. */
  bytesPerSecond?: number;
  /** How long a silent host is waited for, on each connection (pullLink connects with it). */
  idleTimeoutMs?: number;
  /** What to ask the host to compress (default `auto`: where the link is slower than the CPU). */
  compression?: CompressionPolicy;
  /**
   * The chunk index (TELEPORT_HOME): with it, chunks this machine already holds are copied
   * locally instead of fetched, and an interrupted pull resumes. Without it every byte is fetched.
   */
  index?: ChunkIndex;
  /**
   * Which chunks already on this machine a pull may use instead of fetching them (`pull
   * --reuse`). What a pull does not ask for tells the host it has those bytes, so the scope is
   * also what the host can learn: `all` (default) any file the index knows, `dest` only the
   * destination's files and part files, `none` nothing (every byte fetched, no resume, and the
   * pulled files are not added to the index).
   */
  reuse?: ReuseScope;
  /**
   * Told of choices made for the caller: QUIC used because TCP did not get through, the data
   * streams moved to the transport that delivers more.
   */
  onNotice?: (message: string) => void;
  /** Told what is only detail (`--verbose`): why the pull stays on a relay. */
  onDetail?: (message: string) => void;
  /**
   * Files get their `user.` extended attributes as on the host (`pull --xattrs`; the client
   * must have connected asking for them, as pullLink does). Needs the native addon on both sides.
   */
  xattrs?: boolean;
  /**
   * Data streams in plaintext (`pull --no-encryption`): for a trusted network, where the cipher
   * is the bottleneck. The client must have connected asking for it (as pullLink does), and
   * the host must allow it, or the pull fails with ENCRYPTION_REQUIRED.
   */
  plaintext?: boolean;
  /**
   * Fetch chunks over the control connection, opening no data streams: a host pulling an
   * upload cannot dial its pusher (push/upload-receiver.ts).
   */
  chunksOverControl?: boolean;
  /**
   * What the data streams are made by, instead of dialing the link's host: a host pulling an
   * upload is offered them by its pusher (push/offered-streams.ts).
   */
  dataStreams?: DataStreamFactory;
  /** A folder the pull never writes into, by any name: the host's own state folder, for an upload. */
  stateFolder?: StateFolder;
  /**
   * Fail with TELEPORT_ERR_QUOTA once the manifest has announced more file bytes than this: an
   * upload's limit (`host --max-upload-bytes`), which the pusher's own count cannot be trusted with.
   */
  maxBytes?: number;
  /** `--exclude`/`--include`, in the order given (src/filter); the host applies them as it walks. */
  filters?: FilterRule[];
  /**
   * `--delete`: once the pull has succeeded (no entry failed), entries of DEST inside the pulled
   * subtree that the source lacks are removed, but those the filters exclude.
   */
  delete?: boolean;
}

export const REUSE_SCOPES = ["all", "dest", "none"] as const;
export type ReuseScope = (typeof REUSE_SCOPES)[number];

/**
 * What a pull tells its `onProgress` as it runs. Counts are totals of the current attempt: after
 * a `retry` they start again from 0, and what earlier attempts wrote comes back quickly as
 * reused (resumed) bytes. `listing` and `bytes` come at most every PROGRESS_INTERVAL_MS
 * (progress-reporter.ts), the others as they happen; `done` comes last, once.
 */
export type PullEvent = ListingEvent | FileDoneEvent | BytesEvent | RetryEvent | DoneEvent;

/** The manifest so far: the files and bytes it announced; `complete` once it has ended. */
export interface ListingEvent {
  type: "listing";
  files: number;
  bytes: number;
  complete: boolean;
}

/** A file in place under its name (`path`, relative to the destination). */
export interface FileDoneEvent {
  type: "file-done";
  path: string;
  /** Its size: moved, reused, and the holes of a sparse file. */
  bytes: number;
  moved: number;
  reused: number;
}

/** Bytes of files in place: `moved` crossed the network, `reused` were on this machine. */
export interface BytesEvent {
  type: "bytes";
  /** Moved, reused, and the holes of sparse files: what `listing.bytes` is complete at. */
  done: number;
  moved: number;
  reused: number;
  /** The path the bytes come by now (`direct` unless a relay or a punched path carries them). */
  path?: PathKind | undefined;
}

/** pullLink lost its connection mid-pull: it runs again after `waitMs`, resuming. */
export interface RetryEvent extends Retry {
  type: "retry";
}

export interface Retry {
  /** 1 for the first retry. */
  attempt: number;
  of: number;
  error: TeleportError;
  waitMs: number;
}

/** The pull is complete: the summary of its last attempt, and the totals of all of them. */
export interface DoneEvent {
  type: "done";
  summary: PullSummary;
  totals: PullTotals;
}

/** A whole pull, across its attempts (pullLink retries) and the waits between them. */
export interface PullTotals {
  attempts: number;
  seconds: number;
  /** Bytes that crossed the network, in every attempt. */
  bytesMoved: number;
  /** Bytes that were on this machine before the pull: what earlier attempts wrote is not. */
  bytesReused: number;
}

/** Where the Tally tells how far the pull is (progress-reporter.ts). */
export interface ProgressSink {
  /** A file of `bytes` the manifest announced. */
  announced(bytes: number): void;
  /** The manifest has ended. */
  listed(): void;
  /** Bytes in `summary` have changed. */
  counted(summary: PullSummary): void;
}

export interface ReusedBytes {
  /** In the old copy at the destination. */
  existing: number;
  /** In an interrupted earlier pull's part file: this version's, resumed, or another version's. */
  resumed: number;
  /** In other files the index knows. */
  index: number;
}

/** What deltas against old copies did in a pull (client/pull/delta-fetcher.ts). */
export interface DeltaReport {
  /** Chunks rebuilt from their old copy and literal bytes, and their size. */
  chunks: number;
  bytes: number;
  /** Of those bytes, how many came as literals (before compression): counted in bytesFromNetwork. */
  literalBytes: number;
  /** Bytes of DELTA requests sent, and of their answers received (in bytesOnWire). */
  bytesSent: number;
  bytesReceived: number;
  /** The chunks' bytes, less what their deltas cost on the wire both ways. */
  bytesSaved: number;
  /** Chunks asked for as deltas and fetched whole after all. */
  fetchedWhole: number;
}

export function emptyDeltaReport(): DeltaReport {
  return {
    chunks: 0,
    bytes: 0,
    literalBytes: 0,
    bytesSent: 0,
    bytesReceived: 0,
    bytesSaved: 0,
    fetchedWhole: 0,
  };
}

export interface PullSummary {
  files: number;
  directories: number;
  symlinks: number;
  /** More names of files pulled, made hard links to them as on the host. */
  hardLinks: number;
  /** Files given extended attributes (`--xattrs`). */
  filesWithXattrs: number;
  bytes: number;
  bytesFromNetwork: number;
  /** What bytesFromNetwork took on the wire: less where chunks came compressed. */
  bytesOnWire: number;
  bytesReused: number;
  /** Where the reused bytes were. */
  reused: ReusedBytes;
  /**
   * Bytes read from local files: copied chunks (read to be verified) and old copies hashed for
   * the first time. Chunks resumed in place or kept in an unchanged old copy are not read.
   */
  bytesReadLocally: number;
  /**
   * Bytes in the holes of sparse files (counted in `bytes`): never read, sent or written, and
   * holes again at the destination.
   */
  bytesInHoles: number;
  seconds: number;
  /**
   * The transport the pull connected over. Under `auto` its data streams may have moved to the
   * other one: `streamPool.bytesByTransport` says what each carried.
   */
  transport: TransportKind;
  /** The path that carried most of the bytes from the network (the control connection's when none did). */
  path: PathKind;
  /** Bytes from the network by the path they came: to the host's address, through a relay, punched. */
  bytesByPath: Record<PathKind, number>;
  /** False when the data streams were plaintext (`--no-encryption`). */
  encrypted: boolean;
  /** What each data stream carried. */
  streams: StreamStats[];
  /**
   * Changed chunks fetched as deltas against the old copy at the destination (null when the
   * host does not answer deltas, or the pull uses no index).
   */
  delta: DeltaReport | null;
  /** How the stream pool ran (null when nothing crossed the network). */
  streamPool: Omit<PoolReport, "streams"> | null;
  /**
   * Files and folders the host could not read (the first MAX_REPORTED_ENTRIES of them); the
   * rest of the pull is complete. A folder listed here was created, without what it holds.
   */
  failures: EntryFailure[];
  failureCount: number;
  /**
   * Entries the host does not serve, and why (the first MAX_REPORTED_ENTRIES of them): symlinks
   * leading outside the share, FIFOs, sockets, devices. The pull is complete without them.
   */
  skipped: SkippedEntry[];
  skippedCount: number;
  /** With `delete`: entries of DEST removed, each folder's contents included (the first 1,000 by path). */
  deleted: string[];
  deletedCount: number;
  /** With `delete`: what could not be removed, and why (the first 1,000); the pull is then partial. */
  deleteFailures: RemovalFailure[];
  deleteFailureCount: number;
}

export interface SkippedEntry {
  path: string;
  /** A SkipReason (wire/messages.ts), or what a newer host says. */
  reason: string;
}

export interface EntryFailure {
  path: string;
  code: ErrorCode;
  message: string;
}

export type { ByteSource };

/**
 * Bytes by path: what each transport's data streams delivered, on its path, and the rest of
 * `bytesFromNetwork` (chunks over the control connection) on the control connection's path.
 */
export function bytesByPath(
  control: TransportKind,
  bytesFromNetwork: number,
  byTransport: TransportCounts | undefined,
): { path: PathKind; bytesByPath: Record<PathKind, number> } {
  const byPath: Record<PathKind, number> = { direct: 0, relay: 0, punched: 0 };
  let streamed = 0;
  for (const [kind, bytes] of Object.entries(byTransport ?? {}) as [TransportKind, number][]) {
    byPath[pathOf(kind)] += bytes;
    streamed += bytes;
  }
  byPath[pathOf(control)] += Math.max(0, bytesFromNetwork - streamed);
  const most = PATH_KINDS.reduce(
    (best, kind) => (byPath[kind] > byPath[best] ? kind : best),
    pathOf(control),
  );
  return { path: most, bytesByPath: byPath };
}

/** Entries the host could not read, or skipped, reported by name up to this many. */
const MAX_REPORTED_ENTRIES = 1000;

/** Counts what a pull did into its summary, and tells the caller how far it is. */
export class Tally implements TransferTally {
  readonly summary: PullSummary = {
    files: 0,
    directories: 0,
    symlinks: 0,
    hardLinks: 0,
    filesWithXattrs: 0,
    bytes: 0,
    bytesFromNetwork: 0,
    bytesOnWire: 0,
    bytesReused: 0,
    reused: { existing: 0, resumed: 0, index: 0 },
    bytesReadLocally: 0,
    bytesInHoles: 0,
    seconds: 0,
    transport: "tcp",
    path: "direct",
    bytesByPath: { direct: 0, relay: 0, punched: 0 },
    encrypted: true,
    streams: [],
    delta: null,
    streamPool: null,
    failures: [],
    failureCount: 0,
    skipped: [],
    skippedCount: 0,
    deleted: [],
    deletedCount: 0,
    deleteFailures: [],
    deleteFailureCount: 0,
  };
  readonly #progress: ProgressSink | undefined;

  constructor(progress?: ProgressSink) {
    this.#progress = progress;
  }

  /** A file the manifest announced, of `bytes`. */
  announced(bytes: number): void {
    this.#progress?.announced(bytes);
  }

  manifestComplete(): void {
    this.#progress?.listed();
  }

  /** Bytes of a file in place, from `source`. */
  written(bytes: number, source: ByteSource): void {
    const summary = this.summary;
    summary.bytes += bytes;
    if (source === "network") summary.bytesFromNetwork += bytes;
    else if (source === "hole") summary.bytesInHoles += bytes;
    else {
      summary.bytesReused += bytes;
      summary.reused[source] += bytes;
    }
  }

  readLocally(bytes: number): void {
    this.summary.bytesReadLocally += bytes;
  }

  fileDone(withXattrs: boolean): void {
    this.summary.files++;
    if (withXattrs) this.summary.filesWithXattrs++;
  }

  directory(): void {
    this.summary.directories++;
  }

  symlink(): void {
    this.summary.symlinks++;
  }

  hardLink(): void {
    this.summary.hardLinks++;
  }

  /** An entry that could not be pulled; the rest of the pull goes on. */
  failed(path: string, code: ErrorCode, message: string): void {
    this.summary.failureCount++;
    if (this.summary.failures.length < MAX_REPORTED_ENTRIES)
      this.summary.failures.push({ path, code, message });
  }

  /** An entry the host does not serve; the pull is complete without it. */
  skipped(path: string, reason: string): void {
    this.summary.skippedCount++;
    if (this.summary.skipped.length < MAX_REPORTED_ENTRIES) this.summary.skipped.push({ path, reason });
  }

  report(): void {
    this.#progress?.counted(this.summary);
  }
}
