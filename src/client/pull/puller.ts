/**
 * Pulling a file or a tree: the wiring. The manifest streams in from the host and is walked
 * (manifest-walker.ts); each file is a FileTransfer (file-transfer.ts) whose chunks are placed
 * by the ChunkPlanner (chunk-planner.ts): resumed, copied locally, or fetched over the data
 * streams; files are written, committed and linked in the Destination (destination.ts), and
 * recorded in the chunk index (downloads.ts). Memory is bounded by the window and the copy
 * queue, not by file or tree size.
 */
import { mkdir } from "node:fs/promises";
import { resolve } from "node:path";
import { type Chunker, defaultChunker } from "../../chunking/chunker.js";
import { descriptorLimit } from "../../engine/file-io.js";
import { ErrorCode, TeleportError, toTeleportError } from "../../errors.js";
import { PathFilter } from "../../filter/path-filter.js";
import { platformIo } from "../../platform/io.js";
import { type ChunkFetcher, ChunkPlanner } from "../../receive/chunk-planner.js";
import { Destination } from "../../receive/destination.js";
import { Downloads } from "../../receive/downloads.js";
import { entryAdmission } from "../../receive/entry-admission.js";
import { FileTransfer, type IndexedPull, type TransferContext } from "../../receive/file-transfer.js";
import { IndexedChunks } from "../../receive/local-copies.js";
import {
  type FileOpener,
  type FileReceiver,
  ManifestWalker,
  type TreeWriter,
  type WalkedFile,
} from "../../receive/manifest-walker.js";
import { MirrorDeletions } from "../../receive/mirror-deletions.js";
import { OldCopies } from "../../receive/old-copies.js";
import { Work } from "../../receive/work.js";
import type { ChunkIndex } from "../../store/chunk-index.js";
import { pathOf } from "../../transport/transport.js";
import { MAX_CHUNK_SIZE } from "../../wire/messages.js";
import { normalizeUserPath } from "../../wire/path.js";
import type { TeleportClient } from "../client.js";
import { CompressionPolicy } from "../pool/compression-policy.js";
import { tryPunchedPath } from "../pool/punched-path.js";
import { type ChunkWrite, DEFAULT_WINDOW_BYTES, type PoolReport, StreamPool } from "../pool/stream-pool.js";
import { ControlChunks } from "./control-chunks.js";
import { DeltaFetcher } from "./delta-fetcher.js";
import { ProgressReporter, singleAttemptTotals } from "./progress-reporter.js";
import { bytesByPath, type PullOptions, type PullSummary, Tally } from "./summary.js";

/**
 * Files open at once, each holding its part file's descriptor while its chunks are fetched: it
 * bounds a tree of small files over a long path (docs/decisions.md, "Files open at once during a
 * pull"). A quarter of the descriptor limit, at most 1,024: room for the pool's connections and
 * the index.
 */
const MAX_OPEN_FILES = Math.max(64, Math.min(1024, Math.floor(descriptorLimit() / 4)));

export function pull(client: TeleportClient, options: PullOptions): Promise<PullSummary> {
  return new Puller(client, options).run();
}

class Puller implements FileOpener {
  readonly #client: TeleportClient;
  readonly #options: PullOptions;
  readonly #remote: string;
  readonly #dest: string;
  readonly #started = performance.now();
  readonly #work = new Work();
  readonly #tally: Tally;
  readonly #progress: ProgressReporter;
  readonly #chunker: Chunker = defaultChunker();
  /** The pull's records in the chunk index, when there is one. */
  readonly #downloads: Downloads | undefined;
  readonly #pool: PoolOnDemand | ControlChunks;
  readonly #planner: ChunkPlanner;
  readonly #walker: ManifestWalker;
  readonly #transfers: TransferContext;
  readonly #openFiles = new Set<FileTransfer>();
  #announcedBytes = 0;
  readonly #destination: Destination;
  readonly #delta: DeltaFetcher | undefined;
  /** With `delete`: what DEST holds beyond the source, removed once the pull has succeeded. */
  readonly #mirror: MirrorDeletions | undefined;

  constructor(client: TeleportClient, options: PullOptions) {
    this.#client = client;
    this.#options = options;
    this.#remote = normalizeUserPath(options.remotePath ?? "");
    this.#dest = resolve(options.dest);
    this.#progress = new ProgressReporter(options.onProgress);
    this.#tally = new Tally(this.#progress);
    this.#tally.summary.encrypted = encrypted(client, options);
    const index = this.#index;
    const downloads = index && new Downloads(index, this.#chunker.id);
    const localChunks = index && new IndexedChunks(index, options.reuse === "dest" ? this.#dest : undefined);
    this.#downloads = downloads;
    this.#pool = options.chunksOverControl
      ? new ControlChunks(client)
      : new PoolOnDemand(
          () => this.#startPool(),
          Math.max(options.windowBytes ?? DEFAULT_WINDOW_BYTES, MAX_CHUNK_SIZE),
        );
    const destination = new Destination({
      root: this.#dest,
      rootFolder: options.destFolder,
      isKeptDownload: (path) => downloads?.isKept(path) ?? false,
      hardLinks: client.hostSendsHardLinks,
      stateFolder: options.stateFolder,
    });
    this.#destination = destination;
    this.#delta = this.#deltaFetcher();
    this.#planner = new ChunkPlanner({
      local: localChunks,
      journal: downloads,
      fetcher: this.#pool,
      work: this.#work,
      tally: this.#tally,
      delta: this.#delta,
    });
    const filter = options.filters?.length ? PathFilter.compile(options.filters) : undefined;
    this.#mirror = this.#mirrorDeletions(filter);
    this.#walker = new ManifestWalker({
      remote: this.#remote,
      dest: this.#dest,
      tree:
        client.sharesOneFile && this.#remote === ""
          ? keepingOwnMetadata(destination, this.#dest)
          : destination,
      files: this,
      tally: this.#tally,
      hardLinks: client.hostSendsHardLinks,
      admit: entryAdmission(this.#remote, filter, this.#mirror),
    });
    this.#transfers = {
      destination,
      planner: this.#planner,
      index: this.#indexedPull(downloads, localChunks),
      tally: this.#tally,
      work: this.#work,
      xattrs: this.#xattrsWanted(),
      manifestOf: (wirePath) => this.#client.manifest(wirePath, this.#work.signal),
      finished: (transfer, withXattrs) => this.#finished(transfer, withXattrs),
    };
  }

  #indexedPull(
    downloads: Downloads | undefined,
    localChunks: IndexedChunks | undefined,
  ): IndexedPull | undefined {
    const index = this.#index;
    if (index === undefined || downloads === undefined || localChunks === undefined) return undefined;
    const readLocally = (bytes: number) => this.#tally.readLocally(bytes);
    const destination = this.#destination;
    const oldCopies = new OldCopies({
      index,
      chunker: this.#chunker,
      open: (path) => destination.openOldCopy(path),
      readLocally,
      signal: this.#work.signal,
    });
    return { downloads, oldCopies, localChunks };
  }

  /**
   * `--delete`'s comparison, but for a share of one file: its root stands for the file's folder,
   * whose other names are not the share's to mirror (rsync deletes nothing for a file either).
   */
  #mirrorDeletions(filter: PathFilter | undefined): MirrorDeletions | undefined {
    if (this.#options.delete !== true || (this.#client.sharesOneFile && this.#remote === ""))
      return undefined;
    return new MirrorDeletions({
      dest: this.#dest,
      destFolder: this.#options.destFolder,
      protect: (path, isFolder) => filter?.excludes(path, isFolder) === true,
    });
  }

  /** Changed chunks as deltas against old copies: where the host answers them, and old copies are used at all. */
  #deltaFetcher(): DeltaFetcher | undefined {
    if (this.#index === undefined || !this.#client.hostSendsDeltas) return undefined;
    const destination = this.#destination;
    return new DeltaFetcher({
      channel: this.#client,
      openOldCopy: (path) => destination.openOldCopy(path),
      readLocally: (bytes) => this.#tally.readLocally(bytes),
      work: this.#work,
    });
  }

  /** The chunk index this pull uses: none with `reuse: "none"`, which fetches every byte. */
  get #index(): ChunkIndex | undefined {
    return this.#options.reuse === "none" ? undefined : this.#options.index;
  }

  async run(): Promise<PullSummary> {
    const cancel = () => this.#work.fail(new TeleportError(ErrorCode.CANCELLED, "pull cancelled"));
    this.#options.signal?.addEventListener("abort", cancel, { once: true });
    try {
      return await this.#run();
    } finally {
      this.#options.signal?.removeEventListener("abort", cancel);
    }
  }

  /**
   * Starts the transfer of a file the manifest announced, once fewer than MAX_OPEN_FILES are
   * open; a promise only when it must wait for that, or for the index.
   */
  open(file: WalkedFile): FileReceiver | Promise<FileReceiver> {
    this.#countAnnounced(file.entry.size);
    if (this.#openFiles.size >= MAX_OPEN_FILES) return this.#openWhenRoom(file);
    const transfer = FileTransfer.start(file, this.#transfers);
    if (transfer instanceof Promise) return transfer.then((started) => this.#opened(started));
    return this.#opened(transfer);
  }

  /** Files' bytes the manifest has announced, checked against PullOptions.maxBytes. */
  #countAnnounced(bytes: number): void {
    this.#announcedBytes += bytes;
    const { maxBytes } = this.#options;
    if (maxBytes !== undefined && this.#announcedBytes > maxBytes)
      throw new TeleportError(ErrorCode.QUOTA, `the manifest holds more than the ${maxBytes} bytes allowed`);
  }

  async #openWhenRoom(file: WalkedFile): Promise<FileReceiver> {
    while (this.#openFiles.size >= MAX_OPEN_FILES) {
      this.#planner.flush();
      await this.#work.next();
    }
    return this.open(file);
  }

  #opened(transfer: FileTransfer): FileTransfer {
    this.#openFiles.add(transfer);
    // Its chunks are about to be placed: the streams connect while its chunk list still arrives.
    if (transfer.writing && transfer.file.entry.size > 0) this.#pool.start();
    return transfer;
  }

  async #run(): Promise<PullSummary> {
    const summary = this.#tally.summary;
    let stopListening: (() => void) | undefined;
    try {
      this.#measureRtt();
      if (this.#options.destFolder === undefined) await mkdir(this.#dest, { recursive: true });
      summary.transport = this.#client.transport;
      summary.path = pathOf(summary.transport);
      // With the manifest read, the data streams may be all that is left waiting: a host gone
      // silent must fail the pull at its idle timeout, not after every stream has failed to
      // reconnect.
      stopListening = this.#client.onLost((error) => {
        this.#work.fail(error);
        void this.#pool.close({ abort: true });
      });
      const manifest = this.#client.manifest(this.#remote, this.#work.signal, this.#options.filters);
      await this.#walker.walk(manifest, () => this.#work.throwIfFailed());
      this.#tally.manifestComplete();
      this.#planner.flush();
      await this.#work.drain();
      this.#work.throwIfFailed();
      this.#walker.finish();
      this.#work.throwIfFailed();
      const report = await this.#pool.close();
      if (report !== undefined) this.#reportStreams(report);
      this.#reportDeltas();
      Object.assign(
        summary,
        bytesByPath(summary.transport, summary.bytesFromNetwork, report?.bytesByTransport),
      );
      this.#downloads?.flushJournal();
      this.#downloads?.flushRecords();
      this.#removeExtras();
    } catch (err) {
      this.#work.fail(toTeleportError(err));
      await this.#cleanUp();
      // What this attempt moved is told before it fails: pullLink counts it into its totals.
      this.#progress.flush();
      throw this.#work.error;
    } finally {
      stopListening?.();
      this.#destination.close();
      this.#mirror?.close();
    }
    summary.seconds = (performance.now() - this.#started) / 1000;
    this.#progress.done(summary, singleAttemptTotals(summary));
    return summary;
  }

  /**
   * Pings sent ahead of the manifest request, so answered before its first chunk list: the
   * path's round trip picks how many streams the pool starts with. The lowest of the pings and
   * the transport's handshake, as an event loop busy elsewhere delays a ping's answer
   * (docs/decisions.md, "The round trip measured as a pull starts").
   */
  #measureRtt(): void {
    Promise.all([this.#client.ping(), this.#client.ping()])
      .then((pings) => {
        this.#pool.rttMs = Math.min(this.#client.transportRttMs, ...pings);
      })
      .catch(() => {});
  }

  /** `--delete`, once everything is pulled: never after a pull that left entries out. */
  #removeExtras(): void {
    const summary = this.#tally.summary;
    if (this.#mirror === undefined || summary.failureCount > 0) return;
    const report = this.#mirror.remove();
    summary.deleted = report.removed;
    summary.deletedCount = report.removedCount;
    summary.deleteFailures = report.failures;
    summary.deleteFailureCount = report.failureCount;
  }

  #reportStreams(report: PoolReport): void {
    const { streams, ...pool } = report;
    const summary = this.#tally.summary;
    summary.streams = streams;
    summary.streamPool = pool;
    summary.bytesOnWire = streams.reduce((sum, stream) => sum + stream.wireBytes, 0);
  }

  #reportDeltas(): void {
    const delta = this.#delta?.report;
    if (delta === undefined) return;
    const summary = this.#tally.summary;
    summary.delta = delta;
    summary.bytesOnWire += delta.bytesReceived;
  }

  #finished(transfer: FileTransfer, withXattrs: boolean): void {
    this.#openFiles.delete(transfer);
    this.#tally.fileDone(withXattrs);
    this.#tally.report();
    const { bytesMoved: moved, bytesReused: reused } = transfer;
    // Every final path is beneath the destination (the walker made it so): no path.relative per file.
    const path = transfer.file.finalPath.slice(this.#dest.length + (this.#dest.endsWith("/") ? 0 : 1));
    this.#progress.fileDone({ path, bytes: transfer.file.entry.size, moved, reused });
    this.#walker.fileDone(transfer.file);
  }

  /**
   * Stops the streams and waits for in-flight work. A part file whose download holds chunks
   * stays for the next pull to resume; the others are removed. Never throws.
   */
  async #cleanUp(): Promise<void> {
    await this.#pool.close({ abort: true });
    await this.#work.settle();
    this.#downloads?.saveQuietly();
    for (const transfer of this.#openFiles) transfer.abandon();
    this.#openFiles.clear();
  }

  /** Whether files get their extended attributes: asked for, and both sides able to. */
  #xattrsWanted(): boolean {
    if (this.#options.xattrs !== true) return false;
    const notice = (why: string) => this.#options.onNotice?.(`pulling without extended attributes: ${why}`);
    if (platformIo.kind !== "native") notice("this machine cannot write them (no native addon)");
    else if (!this.#client.hostSendsXattrs) notice("the host cannot read them (no native addon there)");
    else return true;
    return false;
  }

  /** The stream pool for this pull's client and options. */
  #startPool(): StreamPool {
    const client = this.#client;
    const options = this.#options;
    const rttMs = this.#pool.rttMs;
    const streams = options.dataStreams ?? client.dataStreams({ encrypted: this.#tally.summary.encrypted });
    const pool = new StreamPool(streams, {
      windowBytes: this.#pool.windowBytes,
      ping: () => client.ping(),
      ...(options.onNotice === undefined ? {} : { onNotice: options.onNotice }),
      ...(rttMs === undefined ? {} : { rttMs }),
      ...(options.streams === undefined ? {} : { streams: options.streams }),
      ...(options.bytesPerSecond === undefined ? {} : { bytesPerSecond: options.bytesPerSecond }),
      compression: options.compression ?? new CompressionPolicy("auto"),
    });
    if (options.dataStreams === undefined) tryPunchedPath(pool, client, options);
    return pool;
  }
}

/** The destination as a share of one file lands in it: DEST keeps its own mode and mtime. */
function keepingOwnMetadata(destination: Destination, dest: string): TreeWriter {
  return {
    makeDirectory: (localPath) => destination.makeDirectory(localPath),
    makeSymlink: (target, localPath, mtimeMs) => destination.makeSymlink(target, localPath, mtimeMs),
    link: (existingPath, localPath) => destination.link(existingPath, localPath),
    setFolderMetadata: (localPath, entry) => {
      if (localPath !== dest) destination.setFolderMetadata(localPath, entry);
    },
  };
}

/** False for `--no-encryption`, where the host and transport allow it; throws where they do not. */
function encrypted(client: TeleportClient, options: PullOptions): boolean {
  if (options.plaintext !== true) return true;
  if (!client.hostTakesPlaintext) {
    throw new TeleportError(ErrorCode.ENCRYPTION_REQUIRED, "the host does not take unencrypted streams");
  }
  if (client.transport !== "tcp") {
    throw new TeleportError(ErrorCode.USAGE, "--no-encryption needs TCP: the host was reached over QUIC");
  }
  return false;
}

/**
 * The stream pool, started with the first file that is written (or the first chunk that has to
 * cross the network): its threads boot and its streams connect while the file's chunk list still
 * arrives, and a pull with nothing to write starts none.
 */
class PoolOnDemand implements ChunkFetcher {
  readonly #start: () => StreamPool;
  /** Bytes in flight until the pool starts and sizes them. */
  readonly #minWindowBytes: number;
  #pool: StreamPool | undefined;
  /** Round trip to the host measured as the pull starts. */
  rttMs: number | undefined;

  constructor(start: () => StreamPool, minWindowBytes: number) {
    this.#start = start;
    this.#minWindowBytes = minWindowBytes;
  }

  get windowBytes(): number {
    return this.#pool?.windowBytes ?? this.#minWindowBytes;
  }

  get batchBytes(): number {
    return this.#started().batchBytes;
  }

  fetch(chunks: ChunkWrite[]): Promise<void> {
    return this.#started().fetch(chunks);
  }

  /** Closes the pool if it was started: its report, else undefined. */
  close(options?: { abort?: boolean }): Promise<PoolReport> | undefined {
    return this.#pool?.close(options);
  }

  /** Starts the pool now, if it has not started. */
  start(): void {
    this.#started();
  }

  #started(): StreamPool {
    this.#pool ??= this.#start();
    return this.#pool;
  }
}
