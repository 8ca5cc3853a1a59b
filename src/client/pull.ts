/**
 * Pulling a file or a tree. The manifest streams in from the host; each chunk reference is placed
 * as it arrives, cheapest first:
 * 1. already in this file's interrupted download (resume): nothing to do;
 * 2. in the old copy at the destination, or anywhere else the chunk index knows on this machine:
 *    copied locally, in runs of consecutive chunks, each verified against its hash;
 * 3. otherwise fetched: batched into GET_CHUNKS requests over the data streams, kept within a
 *    window of bytes in flight, verified on arrival and written at their offset.
 * A file whose every chunk is in its old copy at the same offset is left as it is. Otherwise it is
 * written into a temporary file, journaled in the index chunk by chunk (so a killed pull resumes),
 * and renamed to its final name only when every chunk is written and verified; a folder gets its
 * mode and mtime once everything inside it is done. Memory is bounded by the window and the copy
 * queue, not by file or tree size.
 */
import {
  type BigIntStats,
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  ftruncateSync,
  futimesSync,
  lstatSync,
  openSync,
  readdirSync,
  readSync,
  utimesSync,
} from "node:fs";
import { mkdir, open } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { type Chunker, defaultChunker } from "../chunking/chunker.js";
import { ChunkListHash, chunkBytes } from "../chunking/manifest.js";
import { closeQuietly, descriptorLimit } from "../engine/file-io.js";
import { ErrorCode, isErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { platformIo } from "../platform/io.js";
import { type ChunkIndex, type IndexedFile, inodeOf, type RecordedFile } from "../store/chunk-index.js";
import { fileChunks } from "../store/file-chunks.js";
import type { TransportKind } from "../transport/transport.js";
import {
  type ChunkRef,
  type Entry,
  type EntryError,
  EntryKind,
  type FileBegin,
  type FileEnd,
  MAX_CHUNK_SIZE,
  type Xattr,
} from "../wire/messages.js";
import { checkLinkTarget, isWithin, normalizeUserPath, splitWirePath } from "../wire/path.js";
import type { TeleportClient } from "./client.js";
import { CompressionPolicy } from "./compression-policy.js";
import {
  commitPath,
  createSymlink,
  createTempFile,
  ensureRealDirectory,
  linkReplacing,
  removeQuietly,
  tempFileWriter,
} from "./destination.js";
import { COPY_RUN_BYTES, CopyRun, copyRun, LocalChunks, type SourcePlace } from "./reuse.js";
import {
  type ChunkWrite,
  DEFAULT_WINDOW_BYTES,
  type PoolReport,
  StreamPool,
  type StreamStats,
} from "./streams.js";

export interface PullOptions {
  /** File or folder inside the share; the whole share when empty. */
  remotePath?: string;
  /** Local folder the file or folder is pulled into. */
  dest: string;
  signal?: AbortSignal;
  onProgress?: (progress: PullProgress) => void;
  /** Chunk bytes requested and not yet written, at least (the pool grows it to the path). */
  windowBytes?: number;
  /** Data streams (connections, spread over a thread per core); tuned to the path when unset. */
  streams?: number;
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
   * Told of choices made for the caller: QUIC used because TCP did not get through, the data
   * streams moved to the transport that delivers more.
   */
  onNotice?: (message: string) => void;
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
}

export interface PullProgress {
  files: number;
  bytesDone: number;
  /** Bytes of all files the manifest has announced so far. */
  bytesKnown: number;
  manifestComplete: boolean;
}

export interface ReusedBytes {
  /** In the old copy at the destination. */
  existing: number;
  /** In an interrupted earlier pull's temporary file. */
  resumed: number;
  /** In other files the index knows. */
  index: number;
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
  /** False when the data streams were plaintext (`--no-encryption`). */
  encrypted: boolean;
  /** What each data stream carried. */
  streams: StreamStats[];
  /** How the stream pool ran (null when nothing crossed the network). */
  streamPool: Omit<PoolReport, "streams"> | null;
  /**
   * Files and folders the host could not read (the first MAX_REPORTED_FAILURES of them); the
   * rest of the pull is complete. A folder listed here was created, without what it holds.
   */
  failures: EntryFailure[];
  failureCount: number;
}

export interface EntryFailure {
  path: string;
  code: ErrorCode;
  message: string;
}

const MAX_REPORTED_FAILURES = 1000;
/**
 * Files from this size have the blocks of each run of chunks reserved as their chunk lists
 * arrive (fallocate through the native addon): a call per CHUNKS frame, so not for the many
 * small files of a tree.
 */
const PREALLOCATE_FROM_BYTES = 1024 * 1024;

const BATCH_CHUNKS = 1024;
/**
 * Files open at once, each holding its temp file's descriptor while its chunks are fetched. A
 * small file is open for about a round trip, so over a long path this bounds a tree of them:
 * 128 held 20,000 files of 10 KB to ~1,500 files/s at 50 ms RTT (wan_many_small). A quarter of
 * the descriptor limit, at most 1,024: room for the pool's connections and the index.
 */
const MAX_OPEN_FILES = Math.max(64, Math.min(1024, Math.floor(descriptorLimit() / 4)));
/**
 * Files smaller than this are not journaled while written (a crash costs little to redo); they
 * are indexed once complete, many in one transaction, instead of in two or more per file.
 */
const JOURNAL_MIN_BYTES = 1024 * 1024;
/**
 * Files up to this size bypass the index on the client as on the host: reading and hashing an
 * old copy of 10 KB costs less than its lookup, and recording each new one (a file row, a chunk
 * row, a location lookup per chunk) took ~42 us per file in a CPU profile of a 20,000-file pull.
 */
const TINY_FILE_BYTES = 16 * 1024;
/** Complete small files indexed per transaction. */
const SMALL_FILES_PER_TRANSACTION = 256;
/** A destination folder with more names than this is not listed up front (see DirState.names). */
const MAX_LISTED_NAMES = 100_000;
/** Journal rows per transaction, and the longest a written chunk waits for its row (see #journal). */
const JOURNAL_BATCH = 256;
const JOURNAL_DELAY_MS = 50;
/** Local copies run at once, each with a COPY_RUN_BYTES buffer. */
const MAX_RUNNING_COPIES = 2;
/** Copy runs waiting; the manifest waits when more are queued. */
const MAX_QUEUED_COPIES = 4;

interface DirState {
  wirePath: string;
  localPath: string;
  entry: Entry | undefined; // undefined for the destination root, which keeps its own metadata
  parent: DirState | undefined;
  /** Files and folders inside not yet finished. */
  pending: number;
  /** True once the manifest has moved past this folder's subtree. */
  listed: boolean;
  /** True once its mode and mtime are set. */
  finished: boolean;
  /**
   * Names in the folder before the pull touched it, read once: a file not among them has no old
   * copy, and needs no lstat to say so. null: too many to keep, ask per file. undefined: unread.
   */
  names: Set<string> | null | undefined;
}

interface FileJob {
  entry: Entry;
  wirePath: string;
  finalPath: string;
  parent: DirState;
  /** The file being written, opened when the first byte has to be written. */
  temp: { path: string; fd: number } | undefined;
  /** Its journal in the index, when there is an index. */
  partialId: number | undefined;
  /** True when `temp` is an interrupted pull's download of this same version, resumed. */
  resumed: boolean;
  /** An interrupted pull's download of another version: a source of chunks, removed on commit. */
  stalePartial: { id: number; path: string } | undefined;
  /** The old copy at the final path, as indexed. */
  base: IndexedFile | undefined;
  /**
   * While true the file may be unchanged from its old copy: nothing is written or compared until
   * its end, where the hash of its chunk list is compared with the old copy's.
   */
  maybeUnchanged: boolean;
  /** Hash of the chunk hashes received, checked against the host's file hash at the end. */
  listHash: ChunkListHash;
  /** A small file's chunks, indexed when it is complete (it has no journal). */
  smallChunks: ChunkRef[] | undefined;
  /**
   * No larger than TINY_FILE_BYTES: never in the index, never copied from elsewhere; its old copy
   * is read and hashed (`tinyBaseHash`) instead of looked up.
   */
  tiny: boolean;
  tinyBaseHash: Buffer | undefined;
  /** Consecutive local chunks not yet queued for copying. */
  copyRun: CopyRun | undefined;
  /**
   * Next offset the manifest must describe: chunks arrive in order and tile the file, but for
   * the holes of a sparse file, which lie between them.
   */
  described: number;
  /** Whether the file has holes: its temporary file is then sized at commit. */
  sparse: boolean;
  chunkCount: number;
  written: number;
  /** Chunks recorded in the journal: a failed pull keeps its temporary file only if some are. */
  journaled: number;
  digest: FileEnd | undefined;
  committing: boolean;
  /** Hard links to make to this file once it is complete. */
  otherNames: OtherName[];
  /** Its extended attributes, with `--xattrs` (set before it appears under its name). */
  xattrs: Xattr[] | undefined;
}

/** Another name of a file (a HARDLINK entry), waiting for the file to be complete. */
interface OtherName {
  wirePath: string;
  finalPath: string;
  parent: DirState;
}

interface Fetch {
  chunk: ChunkWrite;
  job: FileJob;
}

export function pull(client: TeleportClient, options: PullOptions): Promise<PullSummary> {
  return new Puller(client, options).run();
}

class Puller {
  readonly #client: TeleportClient;
  readonly #options: PullOptions;
  readonly #remote: string;
  /** Bytes in flight until the stream pool starts and sizes them. */
  readonly #minWindowBytes: number;
  readonly #abort = new AbortController();
  /** Started when the first chunk has to be fetched: a pull with nothing to fetch starts none. */
  #streams: StreamPool | undefined;
  /** Round trip to the host measured as the pull starts. */
  #rttMs: number | undefined;
  readonly #index: ChunkIndex | undefined;
  readonly #local: LocalChunks | undefined;
  readonly #chunker: Chunker = defaultChunker();
  readonly #dest: string;
  /** `--xattrs`, where both sides can: see #xattrsWanted. */
  readonly #xattrs: boolean;
  readonly #started = performance.now();
  #failure: TeleportError | undefined;

  readonly #dirStack: DirState[] = [];
  readonly #openFiles = new Set<FileJob>();
  /** Open files by wire path, for hard links to them that arrive before they are complete. */
  readonly #openByPath = new Map<string, FileJob>();
  #current: FileJob | undefined;
  /** Whether the requested file or folder itself has been announced (it must come first, once). */
  #topSeen = false;

  #batch: Fetch[] = [];
  #batchBytes = 0;
  #flushScheduled = false;
  /** Bytes requested or batched and not yet written. */
  #inFlightBytes = 0;
  readonly #copies: Array<{ run: CopyRun; job: FileJob }> = [];
  /** Complete small files waiting to be indexed. */
  #records: RecordedFile[] = [];
  /** Written chunks not yet journaled (see #journal). */
  #unjournaled: Array<readonly [number, ChunkRef]> = [];
  #journalTimer: NodeJS.Timeout | undefined;
  readonly #copyBuffers: Buffer[] = [];
  #copiesRunning = 0;
  readonly #work = new Set<Promise<void>>();
  #wakeUp: (() => void) | undefined;

  readonly #summary: PullSummary = {
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
    encrypted: true,
    streams: [],
    streamPool: null,
    failures: [],
    failureCount: 0,
  };
  #bytesKnown = 0;
  #manifestComplete = false;

  constructor(client: TeleportClient, options: PullOptions) {
    this.#client = client;
    this.#options = options;
    this.#remote = normalizeUserPath(options.remotePath ?? "");
    this.#minWindowBytes = Math.max(options.windowBytes ?? DEFAULT_WINDOW_BYTES, MAX_CHUNK_SIZE);
    this.#index = options.index;
    this.#local = options.index && new LocalChunks(options.index);
    this.#dest = resolve(options.dest);
    this.#xattrs = this.#xattrsWanted();
    if (options.plaintext === true) {
      if (!client.hostTakesPlaintext) {
        throw new TeleportError(ErrorCode.ENCRYPTION_REQUIRED, "the host does not take unencrypted streams");
      }
      if (client.transport !== "tcp") {
        throw new TeleportError(ErrorCode.USAGE, "--no-encryption needs TCP: the host was reached over QUIC");
      }
      this.#summary.encrypted = false;
    }
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

  async run(): Promise<PullSummary> {
    const cancel = () => this.#fail(new TeleportError(ErrorCode.CANCELLED, "pull cancelled"));
    this.#options.signal?.addEventListener("abort", cancel, { once: true });
    try {
      return await this.#run();
    } finally {
      this.#options.signal?.removeEventListener("abort", cancel);
    }
  }

  async #run(): Promise<PullSummary> {
    const root: DirState = {
      wirePath: parentWirePath(this.#remote),
      localPath: this.#dest,
      entry: undefined,
      parent: undefined,
      pending: 0,
      listed: false,
      finished: false,
      names: undefined,
    };
    let stopListening: (() => void) | undefined;
    try {
      // Sent ahead of the manifest request, so answered before its first chunk list: the path's
      // round trip picks how many streams the pool starts with. The lowest of the pings and the
      // transport's handshake, as an event loop busy elsewhere delays a ping's answer: a host loaded by
      // 32 pulls answered loopback pings in 5-20 ms, and each pull took it for a long path.
      Promise.all([this.#client.ping(), this.#client.ping()])
        .then((pings) => {
          this.#rttMs = Math.min(this.#client.transportRttMs, ...pings);
        })
        .catch(() => {});
      await mkdir(this.#dest, { recursive: true });
      this.#dirStack.push(root);
      this.#summary.transport = this.#client.transport;
      // With the manifest read, the data streams may be all that is left waiting: a host gone
      // silent must fail the pull at its idle timeout, not after every stream has failed to
      // reconnect.
      stopListening = this.#client.onLost((error) => {
        this.#fail(error);
        void this.#streams?.close({ abort: true });
      });
      for await (const event of this.#client.manifest(this.#remote, this.#abort.signal)) {
        this.#throwIfFailed();
        switch (event.kind) {
          case "entries":
            for (const entry of event.entries) await this.#onEntry(entry);
            break;
          case "file-begin":
            await this.#onFileBegin(event.entry);
            break;
          case "chunks":
            await this.#onChunks(event.chunks);
            break;
          case "file-end":
            await this.#onFileEnd(event.digest);
            break;
          case "entry-error":
            this.#onEntryError(event.failure);
            break;
        }
      }
      if (this.#current !== undefined) throw protocolError("manifest ended inside a file");
      this.#manifestComplete = true;
      this.#flush();
      while (this.#work.size > 0) await Promise.race(this.#work);
      this.#throwIfFailed();
      for (const dir of this.#dirStack.splice(0).reverse()) await this.#leaveDirectory(dir);
      this.#throwIfFailed();
      const report = await this.#streams?.close();
      if (report !== undefined) {
        const { streams, ...pool } = report;
        this.#summary.streams = streams;
        this.#summary.streamPool = pool;
        this.#summary.bytesOnWire = streams.reduce((sum, stream) => sum + stream.wireBytes, 0);
      }
      this.#flushJournal();
      this.#flushRecords();
    } catch (err) {
      this.#fail(toTeleportError(err));
      await this.#cleanUp();
      throw this.#failure;
    } finally {
      stopListening?.();
    }
    this.#summary.seconds = (performance.now() - this.#started) / 1000;
    return this.#summary;
  }

  #fail(error: TeleportError): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    this.#abort.abort(error);
    this.#wakeUp?.();
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  /**
   * Stops the streams and waits for in-flight work. A temporary file whose journal holds chunks
   * stays for the next pull to resume; the others are removed. Never throws.
   */
  async #cleanUp(): Promise<void> {
    await this.#streams?.close({ abort: true });
    while (this.#work.size > 0) await Promise.allSettled([...this.#work]);
    try {
      this.#flushJournal(); // what was written stays resumable
    } catch {
      clearTimeout(this.#journalTimer);
    }
    for (const job of this.#openFiles) {
      if (job.temp === undefined) continue;
      closeQuietly(job.temp.fd);
      if (job.journaled > 0) continue;
      removeQuietly(job.temp.path);
      if (job.partialId !== undefined) this.#forgetQuietly(job.partialId);
    }
    this.#openFiles.clear();
    try {
      this.#flushRecords(); // the files committed before the failure are complete
    } catch {
      // not indexed: a later pull reads them again
    }
  }

  /**
   * Journals written chunks, JOURNAL_BATCH rows a transaction or after JOURNAL_DELAY_MS, since a
   * transaction costs as much as ~100 rows (1 GiB: ~0.4 s of commits one per batch, ~0.2 s now).
   * A crash loses at most the last moment's journal: those chunks are fetched again.
   */
  #journal(entries: ReadonlyArray<readonly [number, ChunkRef]>): void {
    if (entries.length === 0) return;
    this.#unjournaled.push(...entries);
    if (this.#unjournaled.length >= JOURNAL_BATCH) this.#flushJournal();
    else this.#journalTimer ??= setTimeout(() => this.#flushJournal(), JOURNAL_DELAY_MS);
  }

  #flushJournal(): void {
    clearTimeout(this.#journalTimer);
    this.#journalTimer = undefined;
    if (this.#unjournaled.length === 0) return;
    const entries = this.#unjournaled;
    this.#unjournaled = [];
    this.#index?.addChunks(entries);
  }

  #flushRecords(): void {
    if (this.#records.length === 0) return;
    const records = this.#records;
    this.#records = [];
    this.#index?.recordFiles(records);
  }

  #forgetQuietly(fileId: number): void {
    try {
      this.#index?.forget(fileId);
    } catch {
      // the index is a cache: a row it keeps is checked before use
    }
  }

  /** Maps a wire path inside the pulled subtree to its path under the destination. */
  #localPath(wirePath: string): string {
    if (!isWithin(wirePath, this.#remote))
      throw protocolError(`host sent "${wirePath}", outside "${this.#remote}"`);
    // Only a folder may land on the destination itself (the share root when pulling everything).
    if (wirePath === "") throw protocolError("the share root must be a folder");
    const skip = splitWirePath(parentWirePath(this.#remote)).length;
    return join(this.#dest, ...splitWirePath(wirePath).slice(skip));
  }

  /** The folder an entry lives in; closes every folder the walk has left behind. */
  async #enter(wirePath: string): Promise<DirState> {
    splitWirePath(wirePath); // refuses unsafe names with their own error codes first
    if (wirePath === this.#remote) {
      if (this.#topSeen) throw protocolError(`host sent "${wirePath}" twice`);
      this.#topSeen = true;
    }
    const parent = parentWirePath(wirePath);
    for (;;) {
      const top = this.#dirStack.at(-1);
      if (top === undefined) throw protocolError(`"${wirePath}" is not inside a folder the host announced`);
      if (top.wirePath === parent && (top.entry !== undefined || wirePath === this.#remote)) return top;
      if (top.entry === undefined)
        throw protocolError(`"${wirePath}" is not inside a folder the host announced`);
      this.#dirStack.pop();
      await this.#leaveDirectory(top);
    }
  }

  async #onEntry(entry: Entry): Promise<void> {
    const parent = await this.#enter(entry.path);
    if (entry.kind === EntryKind.DIRECTORY) {
      // The share root lands on the destination folder itself; other folders are created in it.
      const isShareRoot = entry.path === "";
      const localPath = isShareRoot ? this.#dest : this.#localPath(entry.path);
      const created = !isShareRoot && ensureRealDirectory(localPath) === "created";
      if (!isShareRoot) parent.pending++;
      this.#dirStack.push({
        wirePath: entry.path,
        localPath,
        entry,
        parent: isShareRoot ? undefined : parent,
        pending: 0,
        listed: false,
        finished: false,
        names: created ? new Set() : undefined,
      });
      this.#summary.directories++;
    } else if (entry.kind === EntryKind.SYMLINK) {
      const relativeToDest = splitWirePath(entry.path).slice(
        splitWirePath(parentWirePath(this.#remote)).length,
      );
      checkLinkTarget(relativeToDest.join("/"), entry.linkTarget);
      createSymlink(entry.linkTarget, this.#localPath(entry.path));
      this.#summary.symlinks++;
    } else if (entry.kind === EntryKind.HARDLINK) {
      await this.#onHardLink(entry, parent);
    } else {
      throw protocolError(`file "${entry.path}" announced without its chunks`);
    }
  }

  async #onFileBegin(entry: FileBegin): Promise<void> {
    if (entry.kind !== EntryKind.FILE) throw protocolError(`"${entry.path}" is not a file`);
    if (this.#current !== undefined) throw protocolError("file begins inside another file");
    while (this.#openFiles.size >= MAX_OPEN_FILES) await this.#waitForProgress();
    const parent = await this.#enter(entry.path);
    const finalPath = this.#localPath(entry.path);
    const job: FileJob = {
      entry,
      wirePath: entry.path,
      finalPath,
      parent,
      temp: undefined,
      partialId: undefined,
      resumed: false,
      stalePartial: undefined,
      base: undefined,
      maybeUnchanged: false,
      listHash: new ChunkListHash(),
      smallChunks: entry.size < JOURNAL_MIN_BYTES && this.#index !== undefined ? [] : undefined,
      tiny: entry.size <= TINY_FILE_BYTES && this.#index !== undefined,
      tinyBaseHash: undefined,
      copyRun: undefined,
      described: 0,
      sparse: false,
      chunkCount: 0,
      written: 0,
      journaled: 0,
      digest: undefined,
      committing: false,
      otherNames: [],
      xattrs: this.#xattrs ? (entry.xattrs ?? []) : undefined,
    };
    parent.pending++;
    this.#openFiles.add(job);
    this.#openByPath.set(job.wirePath, job);
    this.#current = job;
    this.#bytesKnown += entry.size;
    if (job.tiny) {
      if (this.#mayExist(parent, finalPath)) job.tinyBaseHash = this.#tinyFileHash(finalPath, entry.size);
      job.maybeUnchanged = job.tinyBaseHash !== undefined;
    } else if (this.#index !== undefined) {
      // Only files with a journal leave a download to resume.
      if (job.smallChunks === undefined) await this.#findPartial(job, this.#index);
      if (this.#mayExist(parent, finalPath)) job.base = await this.#indexExisting(finalPath, this.#index);
      job.maybeUnchanged = job.base !== undefined && job.base.size === entry.size && job.temp === undefined;
    }
    if (!job.maybeUnchanged) this.#openTemp(job);
  }

  /** An entry the host could not read: reported in the summary, and the pull goes on. */
  #onEntryError({ path, code, message }: EntryError): void {
    if (this.#current !== undefined) throw protocolError("an entry error inside a file");
    splitWirePath(path); // checked like any name from the network, though only reported
    if (!isWithin(path, this.#remote)) throw protocolError(`an entry error for "${path}", outside the pull`);
    this.#summary.failureCount++;
    if (this.#summary.failures.length < MAX_REPORTED_FAILURES) {
      this.#summary.failures.push({ path, code: isErrorCode(code) ? code : ErrorCode.IO, message });
    }
  }

  /** The file hash of the tiny file at `path`, if it is a regular file of `size` bytes. */
  #tinyFileHash(path: string, size: number): Buffer | undefined {
    const stats = lstatQuietly(path);
    if (stats === undefined || !stats.isFile() || stats.size !== BigInt(size)) return undefined;
    const data = Buffer.allocUnsafe(size);
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
    } catch {
      return undefined;
    }
    try {
      if (readSync(fd, data, 0, size, 0) !== size) return undefined;
    } catch {
      return undefined;
    } finally {
      closeSync(fd);
    }
    this.#summary.bytesReadLocally += size;
    return chunkBytes(data, this.#chunker).digest.fileHash;
  }

  /** Resumes an interrupted download of this version of the file, or keeps one of another as a source. */
  async #findPartial(job: FileJob, index: ChunkIndex): Promise<void> {
    const partial = index.findPartial(job.finalPath);
    // Another pull into the same place, still running, keeps its download.
    if (partial === undefined || (partial.owner !== process.pid && isRunning(partial.owner))) return;
    const stats = lstatQuietly(partial.path);
    if (stats === undefined || !stats.isFile() || inodeOf(stats) !== partial.inode) {
      index.forget(partial.id);
      return;
    }
    if (partial.version !== versionOf(job.entry)) {
      job.stalePartial = { id: partial.id, path: partial.path };
      return;
    }
    // Read and write: local copies are read back to be verified (reuse.ts).
    const flags = constants.O_RDWR | (constants.O_NOFOLLOW ?? 0);
    let fd: number;
    try {
      fd = openSync(partial.path, flags);
    } catch {
      return;
    }
    index.claim(partial.id);
    job.temp = { path: partial.path, fd };
    job.partialId = partial.id;
    job.resumed = true;
  }

  /**
   * Whether `path` in `dir` may be an old copy: false only if the folder's listing says no. The
   * listing, made once per folder, also removes the temporary files that killed pulls left there.
   */
  #mayExist(dir: DirState, path: string): boolean {
    if (dir.names === undefined) {
      let names: string[] | null;
      try {
        names = readdirSync(dir.localPath);
      } catch {
        names = null;
      }
      if (names !== null) this.#removeLeftovers(dir.localPath, names);
      dir.names = names !== null && names.length <= MAX_LISTED_NAMES ? new Set(names) : null;
    }
    return dir.names === null || dir.names.has(basename(path));
  }

  /**
   * Removes temporary files whose writer is no longer running, except downloads the journal
   * keeps for resuming: a pull killed between creating a file and journaling it, or writing a
   * small file (never journaled), leaves one behind.
   */
  #removeLeftovers(folder: string, names: readonly string[]): void {
    for (const name of names) {
      const writer = tempFileWriter(name);
      if (writer === undefined || writer === process.pid || isRunning(writer)) continue;
      const path = join(folder, name);
      if (this.#index?.isDownload(path)) continue;
      removeQuietly(path);
    }
  }

  /** The old copy at `path`, indexed now if it was not (read and hashed once). */
  async #indexExisting(path: string, index: ChunkIndex): Promise<IndexedFile | undefined> {
    const stats = lstatQuietly(path);
    if (stats === undefined || !stats.isFile()) return undefined;
    let known = index.lookupFile(path, stats, this.#chunker.id);
    if (known === undefined) {
      const handle = await open(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0)).catch(
        () => undefined,
      );
      if (handle === undefined) return undefined;
      try {
        const size = Number(stats.size);
        const listing = fileChunks(handle.fd, path, size, this.#chunker, index, this.#abort.signal);
        while (!(await listing.next()).done) {}
        this.#summary.bytesReadLocally += size;
      } catch {
        return undefined; // unreadable or changing: not a source
      } finally {
        await handle.close();
      }
      known = index.lookupFile(path, stats, this.#chunker.id);
    }
    return known;
  }

  /** The file the job writes into: a new temporary file, journaled when there is an index. */
  #openTemp(job: FileJob): number {
    if (job.temp !== undefined) return job.temp.fd;
    job.temp = createTempFile(job.finalPath);
    if (this.#index !== undefined && job.smallChunks === undefined) {
      const stats = fstatSync(job.temp.fd, { bigint: true });
      const download = { target: job.finalPath, version: versionOf(job.entry) };
      job.partialId = this.#index.startFile(job.temp.path, stats, this.#chunker.id, download);
    }
    return job.temp.fd;
  }

  async #onChunks(chunks: ChunkRef[]): Promise<void> {
    const job = this.#current;
    if (job === undefined) throw protocolError("chunks outside a file");
    const fresh = !job.maybeUnchanged && !job.resumed ? job.temp : undefined;
    if (fresh !== undefined && job.entry.size >= PREALLOCATE_FROM_BYTES)
      preallocateRuns(fresh.fd, chunks, job.finalPath);
    for (const chunk of chunks) {
      if (chunk.offset < job.described || chunk.size === 0 || chunk.size > MAX_CHUNK_SIZE) {
        throw protocolError(`chunk at ${chunk.offset} of "${job.wirePath}" does not follow the previous one`);
      }
      if (chunk.offset + chunk.size > job.entry.size)
        throw protocolError(`chunks of "${job.wirePath}" run past its size`);
      if (chunk.offset > job.described) {
        job.listHash.addHole(job.described, chunk.offset - job.described);
        this.#hole(job, job.described, chunk.offset);
      }
      job.described = chunk.offset + chunk.size;
      job.chunkCount++;
      job.listHash.add(chunk.hash);
      job.smallChunks?.push(chunk);
      if (!job.maybeUnchanged) await this.#place(job, chunk);
    }
  }

  /** Decides where a chunk's bytes come from: see the top of this file. */
  async #place(job: FileJob, chunk: ChunkRef): Promise<void> {
    const index = this.#index;
    if (index !== undefined) {
      if (job.resumed && index.hasChunkAt(job.partialId as number, chunk.offset, chunk.hash)) {
        job.journaled++;
        this.#reused(job, chunk.size, "resumed");
        return;
      }
      if (!job.tiny && (await this.#copyLocally(job, chunk, index))) return;
    }
    while (
      (this.#inFlightBytes > 0 && this.#inFlightBytes + chunk.size > this.#windowBytes()) ||
      this.#batch.length >= BATCH_CHUNKS
    ) {
      await this.#waitForProgress();
    }
    const fd = this.#openTemp(job);
    this.#enqueue({ chunk: { ...chunk, path: job.wirePath, fd }, job });
  }

  /**
   * The file differs from its old copy after all: the chunks went by without being placed, so
   * its manifest is asked for again, now placed chunk by chunk. It must be the same manifest.
   */
  async #replay(job: FileJob, digest: FileEnd): Promise<void> {
    job.maybeUnchanged = false;
    this.#openTemp(job);
    const changed = () =>
      new TeleportError(ErrorCode.FILE_CHANGED, `"${job.wirePath}" changed on the host during the pull`);
    let described = 0;
    for await (const event of this.#client.manifest(job.wirePath, this.#abort.signal)) {
      if (event.kind === "file-begin") {
        if (event.entry.size !== job.entry.size || event.entry.mtimeMs !== job.entry.mtimeMs) throw changed();
      } else if (event.kind === "chunks") {
        for (const chunk of event.chunks) {
          if (chunk.offset < described || chunk.size === 0 || chunk.offset + chunk.size > job.entry.size) {
            throw protocolError(
              `chunk at ${chunk.offset} of "${job.wirePath}" does not follow the previous one`,
            );
          }
          if (chunk.offset > described) this.#hole(job, described, chunk.offset);
          described = chunk.offset + chunk.size;
          await this.#place(job, chunk);
        }
      } else if (event.kind === "file-end") {
        if (!event.digest.fileHash.equals(digest.fileHash)) throw changed();
        if (described < job.entry.size) {
          this.#hole(job, described, job.entry.size);
          described = job.entry.size;
        }
      } else {
        throw protocolError(`unexpected entries in the manifest of "${job.wirePath}"`);
      }
    }
    if (described !== job.entry.size) throw changed();
  }

  /** Adds the chunk to a local copy run if this machine has its bytes; false if it must be fetched. */
  async #copyLocally(job: FileJob, chunk: ChunkRef, index: ChunkIndex): Promise<boolean> {
    const run = job.copyRun;
    if (run?.fits(chunk) && index.hasChunkAt(run.sourceFileId, run.nextSourceOffset, chunk.hash)) {
      run.push(chunk);
      return true;
    }
    let source: SourcePlace | undefined;
    if (job.base !== undefined && index.hasChunkAt(job.base.id, chunk.offset, chunk.hash)) {
      source = { fileId: job.base.id, path: job.finalPath, offset: chunk.offset };
    } else {
      source = this.#local?.find(chunk.hash, job.partialId);
    }
    if (source === undefined) return false;
    await this.#addToRun(job, source, chunk);
    return true;
  }

  async #addToRun(job: FileJob, source: SourcePlace, chunk: ChunkRef): Promise<void> {
    const run = job.copyRun;
    if (run?.fits(chunk) && run.sourceFileId === source.fileId && run.nextSourceOffset === source.offset) {
      run.push(chunk);
      return;
    }
    await this.#queueRun(job);
    job.copyRun = new CopyRun(source, chunk);
  }

  /** Queues the job's open copy run, waiting while the queue is full. */
  async #queueRun(job: FileJob): Promise<void> {
    const run = job.copyRun;
    if (run === undefined) return;
    job.copyRun = undefined;
    while (this.#copies.length >= MAX_QUEUED_COPIES) await this.#waitForProgress();
    this.#copies.push({ run, job });
    this.#startCopies();
  }

  #startCopies(): void {
    while (this.#copiesRunning < MAX_RUNNING_COPIES && this.#failure === undefined) {
      const next = this.#copies.shift();
      if (next === undefined) return;
      this.#copiesRunning++;
      const buffer = this.#copyBuffers.pop() ?? Buffer.allocUnsafe(COPY_RUN_BYTES);
      this.#track(
        this.#copy(next.run, next.job, buffer).finally(() => {
          this.#copyBuffers.push(buffer);
          this.#copiesRunning--;
          this.#startCopies();
        }),
      );
    }
  }

  async #copy(run: CopyRun, job: FileJob, buffer: Buffer): Promise<void> {
    const fd = this.#openTemp(job);
    const { copied, mismatched } = await copyRun(run, fd, buffer);
    this.#throwIfFailed();
    this.#summary.bytesReadLocally += run.bytes;
    if (job.partialId !== undefined && copied.length > 0) {
      const partialId = job.partialId;
      this.#journal(copied.map((chunk) => [partialId, chunk] as const));
      job.journaled += copied.length;
    }
    const kind =
      run.sourceFileId === job.base?.id
        ? "existing"
        : run.sourceFileId === job.stalePartial?.id
          ? "resumed"
          : "index";
    for (const chunk of copied) this.#reused(job, chunk.size, kind);
    if (mismatched.length > 0) {
      // The source changed or its index rows were wrong: fetch those chunks, forget the source.
      this.#forgetQuietly(run.sourceFileId);
      this.#local?.changed(run.sourcePath);
      for (const chunk of mismatched) this.#enqueue({ chunk: { ...chunk, path: job.wirePath, fd }, job });
      this.#flush();
    }
  }

  /**
   * A hole of a sparse file, from `start` to `end`: nothing to fetch or write (a resumed download
   * has it punched, in case an older version had data there), and a hole at the destination.
   * Files that may be unchanged are only hashed until their end.
   */
  #hole(job: FileJob, start: number, end: number): void {
    if (job.maybeUnchanged) return;
    job.sparse = true;
    if (job.resumed && job.temp !== undefined) platformIo.zeroRange(job.temp.fd, start, end - start);
    job.written += end - start;
    this.#summary.bytes += end - start;
    this.#summary.bytesInHoles += end - start;
    this.#maybeCommit(job);
    this.#reportProgress();
  }

  #setXattrs(path: string, xattrs: readonly Xattr[]): void {
    try {
      if (platformIo.writeXattrs(path, xattrs)) this.#summary.filesWithXattrs += xattrs.length > 0 ? 1 : 0;
    } catch (err) {
      throw toTeleportError(err, `setting extended attributes of ${path}`);
    }
  }

  #reused(job: FileJob, bytes: number, kind: keyof ReusedBytes): void {
    job.written += bytes;
    this.#summary.bytes += bytes;
    this.#summary.bytesReused += bytes;
    this.#summary.reused[kind] += bytes;
    this.#maybeCommit(job);
    this.#reportProgress();
  }

  async #onFileEnd(digest: FileEnd): Promise<void> {
    const job = this.#current;
    if (job === undefined) throw protocolError("file end outside a file");
    if (job.described < digest.size && digest.size === job.entry.size) {
      job.listHash.addHole(job.described, digest.size - job.described);
      this.#hole(job, job.described, digest.size);
      job.described = digest.size;
    }
    if (
      digest.size !== job.entry.size ||
      job.described !== job.entry.size ||
      digest.chunkCount !== job.chunkCount
    ) {
      throw protocolError(`chunks of "${job.wirePath}" do not cover the file`);
    }
    if (!job.listHash.digest().equals(digest.fileHash)) {
      throw protocolError(`the file hash of "${job.wirePath}" does not match its chunk list`);
    }
    job.digest = digest;
    this.#current = undefined;
    if (job.maybeUnchanged) {
      const oldHash = job.tiny ? job.tinyBaseHash : job.base?.fileHash;
      if (oldHash?.equals(digest.fileHash)) {
        // The same chunk list as the old copy, which is unchanged since indexed (or was just
        // hashed, when tiny): nothing to write.
        this.#reused(job, job.entry.size, "existing");
        return;
      }
      if (job.tiny) {
        // Its chunks, a handful at most, were kept: placed now.
        job.maybeUnchanged = false;
        for (const chunk of job.smallChunks ?? []) await this.#place(job, chunk);
      } else {
        await this.#replay(job, digest);
      }
    }
    await this.#queueRun(job);
    this.#maybeCommit(job);
  }

  #enqueue(fetch: Fetch): void {
    this.#batch.push(fetch);
    this.#batchBytes += fetch.chunk.size;
    this.#inFlightBytes += fetch.chunk.size;
    if (this.#batchBytes >= this.#pool().batchBytes || this.#batch.length >= BATCH_CHUNKS) {
      this.#flush();
    } else if (!this.#flushScheduled) {
      // Whatever else has already arrived is processed before this runs, so small files batch up.
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        this.#flush();
      });
    }
  }

  /** Hands the batch to the stream pool, which sends it as one GET_CHUNKS request. */
  #flush(): void {
    if (this.#batch.length === 0 || this.#failure !== undefined) return;
    const batch = this.#batch;
    this.#batch = [];
    this.#batchBytes = 0;
    const fetching = this.#pool()
      .fetch(batch.map((fetch) => fetch.chunk))
      .then(() => this.#written(batch));
    this.#track(fetching);
  }

  /** The stream pool, started with the first chunk that has to cross the network. */
  #pool(): StreamPool {
    this.#streams ??= new StreamPool(this.#client.dataStreams({ encrypted: this.#summary.encrypted }), {
      windowBytes: this.#minWindowBytes,
      ping: () => this.#client.ping(),
      ...(this.#options.onNotice === undefined ? {} : { onNotice: this.#options.onNotice }),
      ...(this.#rttMs === undefined ? {} : { rttMs: this.#rttMs }),
      ...(this.#options.streams === undefined ? {} : { streams: this.#options.streams }),
      compression: this.#options.compression ?? new CompressionPolicy("auto"),
    });
    return this.#streams;
  }

  /** Bytes the pull may have requested and not yet written: the pool sizes it to the path. */
  #windowBytes(): number {
    return this.#streams?.windowBytes ?? this.#minWindowBytes;
  }

  /** Journals and accounts a batch the streams have verified and written. */
  #written(batch: Fetch[]): void {
    const journal: Array<readonly [number, ChunkRef]> = [];
    for (const { chunk, job } of batch) {
      if (job.partialId !== undefined) {
        journal.push([job.partialId, chunk]);
        job.journaled++;
      }
    }
    this.#journal(journal);
    for (const { chunk, job } of batch) {
      this.#inFlightBytes -= chunk.size;
      job.written += chunk.size;
      this.#summary.bytes += chunk.size;
      this.#summary.bytesFromNetwork += chunk.size;
      this.#maybeCommit(job);
    }
    this.#reportProgress();
  }

  #track(work: Promise<void>): void {
    const tracked = work.then(
      () => {
        this.#work.delete(tracked);
        this.#wakeUp?.();
      },
      (err: unknown) => {
        this.#work.delete(tracked);
        this.#fail(toTeleportError(err));
      },
    );
    this.#work.add(tracked);
  }

  #waitForProgress(): Promise<void> {
    this.#throwIfFailed();
    this.#flush();
    return new Promise<void>((resolve) => {
      this.#wakeUp = () => {
        this.#wakeUp = undefined;
        resolve();
      };
    }).then(() => this.#throwIfFailed());
  }

  #maybeCommit(job: FileJob): void {
    if (job.committing || job.digest === undefined || job.written !== job.entry.size) return;
    job.committing = true;
    this.#track(job.temp === undefined ? this.#keepExisting(job) : this.#commit(job));
  }

  /** Metadata, close, rename: the file appears under its name only now, complete and verified. */
  async #commit(job: FileJob): Promise<void> {
    const { entry } = job;
    const { fd, path } = job.temp as { path: string; fd: number };
    job.temp = { path, fd: -1 }; // closed below, never again: the number may be reused at once
    try {
      // A resumed download may be longer than this version of the file; a sparse file may end
      // in a hole, which nothing was written to.
      if (job.resumed || job.sparse) ftruncateSync(fd, entry.size);
      fchmodSync(fd, entry.mode & 0o777);
      futimesSync(fd, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
    } finally {
      closeSync(fd);
    }
    if (job.xattrs !== undefined) this.#setXattrs(path, job.xattrs);
    this.#throwIfFailed();
    commitPath(path, job.finalPath);
    await this.#indexCommitted(job);
    if (job.stalePartial !== undefined) {
      removeQuietly(job.stalePartial.path);
      this.#forgetQuietly(job.stalePartial.id);
    }
    await this.#finished(job);
  }

  /** The file now at its final path is what the index says it is: next time it is a known copy. */
  async #indexCommitted(job: FileJob): Promise<void> {
    const index = this.#index;
    if (index === undefined) return;
    this.#local?.changed(job.finalPath);
    if (job.tiny) return;
    if (job.smallChunks !== undefined) {
      const stats = lstatSync(job.finalPath, { bigint: true });
      const digest = job.digest as FileEnd;
      this.#records.push({
        path: job.finalPath,
        stats,
        chunker: this.#chunker.id,
        digest,
        chunks: job.smallChunks,
      });
      if (this.#records.length >= SMALL_FILES_PER_TRANSACTION) this.#flushRecords();
      return;
    }
    if (job.partialId === undefined) return;
    this.#flushJournal();
    // A journal with more rows than chunks holds a resumed version's leftovers: not vouched for.
    if (job.resumed && index.chunkCount(job.partialId) !== job.chunkCount) {
      index.forget(job.partialId);
      return;
    }
    const stats = lstatSync(job.finalPath, { bigint: true });
    index.finishFile(job.partialId, job.finalPath, stats, job.digest as FileEnd);
  }

  /** The old copy already holds every chunk: only its mode and mtime may need setting. */
  async #keepExisting(job: FileJob): Promise<void> {
    const { entry, finalPath } = job;
    const index = this.#index as ChunkIndex;
    const stats = lstatSync(finalPath, { bigint: true });
    const sameMode = (Number(stats.mode) & 0o777) === (entry.mode & 0o777);
    const sameTime = Math.abs(Number(stats.mtimeNs / 1000n) / 1000 - entry.mtimeMs) < 1;
    const sameXattrs =
      job.xattrs === undefined || sameAttributes(platformIo.readXattrs(finalPath), job.xattrs);
    if (!sameMode || !sameTime || !sameXattrs) {
      chmodSync(finalPath, entry.mode & 0o777);
      utimesSync(finalPath, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
      if (!sameXattrs) this.#setXattrs(finalPath, job.xattrs as Xattr[]);
      if (!job.tiny) {
        const now = lstatSync(finalPath, { bigint: true });
        index.finishFile((job.base as { id: number }).id, finalPath, now, job.digest as FileEnd);
      }
      this.#local?.changed(finalPath);
    }
    if (job.stalePartial !== undefined) {
      removeQuietly(job.stalePartial.path);
      this.#forgetQuietly(job.stalePartial.id);
    }
    await this.#finished(job);
  }

  async #finished(job: FileJob): Promise<void> {
    this.#openFiles.delete(job);
    if (this.#openByPath.get(job.wirePath) === job) this.#openByPath.delete(job.wirePath);
    this.#summary.files++;
    this.#reportProgress();
    for (const name of job.otherNames) await this.#linkName(job.finalPath, name);
    await this.#childDone(job.parent);
  }

  /**
   * A HARDLINK entry: another name of a file of this pull. Linked at once if the file is
   * complete, else when it is.
   */
  async #onHardLink(entry: Entry, parent: DirState): Promise<void> {
    const target = entry.linkTarget;
    splitWirePath(target);
    if (!isWithin(target, this.#remote) || target === entry.path)
      throw protocolError(`hard link "${entry.path}" to "${target}", outside the pull`);
    parent.pending++;
    const name = { wirePath: entry.path, finalPath: this.#localPath(entry.path), parent };
    const open = this.#openByPath.get(target);
    if (open !== undefined) open.otherNames.push(name);
    else await this.#linkName(this.#localPath(target), name);
  }

  /**
   * Makes `name` a hard link to the complete file at `finalPath`, replacing what was there; a
   * file system without hard links gets a copy. A target that is missing (it failed to pull) is
   * reported as a failure of this name, and the pull goes on.
   */
  async #linkName(finalPath: string, name: OtherName): Promise<void> {
    try {
      linkReplacing(finalPath, name.finalPath);
      this.#summary.hardLinks++;
    } catch (err) {
      const error = toTeleportError(err, `linking "${name.wirePath}"`);
      this.#summary.failureCount++;
      if (this.#summary.failures.length < MAX_REPORTED_FAILURES)
        this.#summary.failures.push({ path: name.wirePath, code: error.code, message: error.detail });
    }
    await this.#childDone(name.parent);
  }

  async #leaveDirectory(dir: DirState): Promise<void> {
    dir.listed = true;
    await this.#finishDirectoryIfDone(dir);
  }

  async #childDone(dir: DirState): Promise<void> {
    dir.pending--;
    await this.#finishDirectoryIfDone(dir);
  }

  /** A folder gets its mode and mtime last, since creating entries inside it changes its mtime. */
  async #finishDirectoryIfDone(dir: DirState): Promise<void> {
    const { entry } = dir;
    if (!dir.listed || dir.pending > 0 || entry === undefined || dir.finished) return;
    dir.finished = true;
    chmodSync(dir.localPath, entry.mode & 0o777);
    utimesSync(dir.localPath, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
    if (dir.parent !== undefined) await this.#childDone(dir.parent);
  }

  #reportProgress(): void {
    this.#options.onProgress?.({
      files: this.#summary.files,
      bytesDone: this.#summary.bytes,
      bytesKnown: this.#bytesKnown,
      manifestComplete: this.#manifestComplete,
    });
  }
}

function isRunning(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** What a download in progress is a download of: a changed remote file starts a new one. */
function versionOf(entry: Entry): string {
  return `${entry.size}:${entry.mtimeMs}`;
}

function parentWirePath(wirePath: string): string {
  const slash = wirePath.lastIndexOf("/");
  return slash < 0 ? "" : wirePath.slice(0, slash);
}

function protocolError(message: string): TeleportError {
  return new TeleportError(ErrorCode.PROTOCOL, message);
}

function lstatQuietly(path: string): BigIntStats | undefined {
  try {
    return lstatSync(path, { bigint: true });
  } catch {
    return undefined;
  }
}

/**
 * Reserves the blocks of each run of back-to-back chunks in `chunks` (not the holes between
 * runs): a disk without room fails the file now, not halfway through.
 */
function preallocateRuns(fd: number, chunks: readonly ChunkRef[], finalPath: string): void {
  let i = 0;
  while (i < chunks.length) {
    const start = (chunks[i] as ChunkRef).offset;
    let end = start;
    for (; i < chunks.length && (chunks[i] as ChunkRef).offset === end; i++)
      end += (chunks[i] as ChunkRef).size;
    try {
      platformIo.preallocate(fd, start, end - start);
    } catch (err) {
      throw toTeleportError(err, `reserving ${end - start} bytes for ${finalPath}`);
    }
  }
}

/** Whether `current` (read from a file; undefined: unreadable) holds exactly `wanted`. */
function sameAttributes(current: readonly Xattr[] | undefined, wanted: readonly Xattr[]): boolean {
  if (current === undefined || current.length !== wanted.length) return false;
  const byName = new Map(current.map((xattr) => [xattr.name, xattr.value]));
  return wanted.every((xattr) => byName.get(xattr.name)?.equals(xattr.value) === true);
}
