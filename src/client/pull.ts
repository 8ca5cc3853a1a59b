/**
 * Pulling a file or a tree. The manifest streams in from the host; as chunk references arrive
 * they are batched into GET_CHUNKS requests, kept within a window of bytes in flight, verified
 * against their BLAKE3 hash on arrival and written at their offset into a temporary file. A file
 * is renamed to its final name only when every chunk is written; a folder gets its mode and mtime
 * once everything inside it is done. Memory is bounded by the window, not by file or tree size.
 */
import type { FileHandle } from "node:fs/promises";
import { chmod, mkdir, utimes } from "node:fs/promises";
import { join } from "node:path";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { formatLink } from "../transport/link.js";
import { type ChunkRef, type Entry, EntryKind, type FileEnd, MAX_CHUNK_SIZE } from "../wire/messages.js";
import { checkLinkTarget, isWithin, normalizeUserPath, splitWirePath } from "../wire/path.js";
import type { TeleportClient } from "./client.js";
import {
  commitPath,
  createSymlink,
  createTempFile,
  ensureRealDirectory,
  removeQuietly,
} from "./destination.js";
import { type ChunkWrite, defaultStreamCount, StreamPool, type StreamStats } from "./streams.js";

export interface PullOptions {
  /** File or folder inside the share; the whole share when empty. */
  remotePath?: string;
  /** Local folder the file or folder is pulled into. */
  dest: string;
  signal?: AbortSignal;
  onProgress?: (progress: PullProgress) => void;
  /** Chunk bytes requested but not yet written; bounds the pull's memory. */
  windowBytes?: number;
  /** Data streams (connections, each with its own thread); `defaultStreamCount()` when unset. */
  streams?: number;
}

export interface PullProgress {
  files: number;
  bytesDone: number;
  /** Bytes of all files the manifest has announced so far. */
  bytesKnown: number;
  manifestComplete: boolean;
}

export interface PullSummary {
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
  bytesFromNetwork: number;
  bytesReused: number;
  seconds: number;
  /** What each data stream carried. */
  streams: StreamStats[];
}

const DEFAULT_WINDOW_BYTES = 16 * 1024 * 1024;
const BATCH_BYTES = 2 * 1024 * 1024;
const BATCH_CHUNKS = 1024;
const MAX_OPEN_FILES = 128;
/** Per stream; well under the host's cap of 256 open requests per connection. */
const MAX_OPEN_REQUESTS_PER_STREAM = 16;

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
}

interface FileJob {
  entry: Entry;
  wirePath: string;
  finalPath: string;
  tempPath: string;
  handle: FileHandle;
  parent: DirState;
  /** Next offset the manifest must describe: chunks arrive in order and tile the file. */
  described: number;
  chunkCount: number;
  written: number;
  digest: FileEnd | undefined;
  committing: boolean;
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
  readonly #windowBytes: number;
  readonly #abort = new AbortController();
  readonly #streams: StreamPool;
  readonly #started = performance.now();
  #failure: TeleportError | undefined;

  readonly #dirStack: DirState[] = [];
  readonly #openFiles = new Set<FileJob>();
  #current: FileJob | undefined;
  /** Whether the requested file or folder itself has been announced (it must come first, once). */
  #topSeen = false;

  #batch: Fetch[] = [];
  #batchBytes = 0;
  #flushScheduled = false;
  /** Bytes requested or batched and not yet written. */
  #inFlightBytes = 0;
  /** GET_CHUNKS requests sent and not yet answered in full. */
  #requestsOpen = 0;
  readonly #work = new Set<Promise<void>>();
  #wakeUp: (() => void) | undefined;

  readonly #summary: PullSummary = {
    files: 0,
    directories: 0,
    symlinks: 0,
    bytes: 0,
    bytesFromNetwork: 0,
    bytesReused: 0,
    seconds: 0,
    streams: [],
  };
  #bytesKnown = 0;
  #manifestComplete = false;

  constructor(client: TeleportClient, options: PullOptions) {
    this.#client = client;
    this.#options = options;
    this.#remote = normalizeUserPath(options.remotePath ?? "");
    this.#windowBytes = Math.max(options.windowBytes ?? DEFAULT_WINDOW_BYTES, 2 * MAX_CHUNK_SIZE);
    // The streams connect while the manifest starts to arrive.
    this.#streams = new StreamPool(formatLink(client.link), options.streams ?? defaultStreamCount());
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
      localPath: this.#options.dest,
      entry: undefined,
      parent: undefined,
      pending: 0,
      listed: false,
      finished: false,
    };
    try {
      await mkdir(this.#options.dest, { recursive: true });
      this.#dirStack.push(root);
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
            this.#onFileEnd(event.digest);
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
      this.#summary.streams = await this.#streams.close();
    } catch (err) {
      this.#fail(toTeleportError(err));
      await this.#cleanUp();
      throw this.#failure;
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

  /** Stops the streams and waits for in-flight work, then removes every temporary file. Never throws. */
  async #cleanUp(): Promise<void> {
    await this.#streams.close({ abort: true });
    while (this.#work.size > 0) await Promise.allSettled([...this.#work]);
    for (const job of this.#openFiles) {
      await job.handle.close().catch(() => {});
      await removeQuietly(job.tempPath);
    }
    this.#openFiles.clear();
  }

  /** Maps a wire path inside the pulled subtree to its path under the destination. */
  #localPath(wirePath: string): string {
    if (!isWithin(wirePath, this.#remote))
      throw protocolError(`host sent "${wirePath}", outside "${this.#remote}"`);
    // Only a folder may land on the destination itself (the share root when pulling everything).
    if (wirePath === "") throw protocolError("the share root must be a folder");
    const skip = splitWirePath(parentWirePath(this.#remote)).length;
    return join(this.#options.dest, ...splitWirePath(wirePath).slice(skip));
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
      const localPath = isShareRoot ? this.#options.dest : this.#localPath(entry.path);
      if (!isShareRoot) {
        await ensureRealDirectory(localPath);
        parent.pending++;
      }
      this.#dirStack.push({
        wirePath: entry.path,
        localPath,
        entry,
        parent: isShareRoot ? undefined : parent,
        pending: 0,
        listed: false,
        finished: false,
      });
      this.#summary.directories++;
    } else if (entry.kind === EntryKind.SYMLINK) {
      const relativeToDest = splitWirePath(entry.path).slice(
        splitWirePath(parentWirePath(this.#remote)).length,
      );
      checkLinkTarget(relativeToDest.join("/"), entry.linkTarget);
      await createSymlink(entry.linkTarget, this.#localPath(entry.path));
      this.#summary.symlinks++;
    } else {
      throw protocolError(`file "${entry.path}" announced without its chunks`);
    }
  }

  async #onFileBegin(entry: Entry): Promise<void> {
    if (entry.kind !== EntryKind.FILE) throw protocolError(`"${entry.path}" is not a file`);
    if (this.#current !== undefined) throw protocolError("file begins inside another file");
    while (this.#openFiles.size >= MAX_OPEN_FILES) await this.#waitForProgress();
    const parent = await this.#enter(entry.path);
    const finalPath = this.#localPath(entry.path);
    const { path: tempPath, handle } = await createTempFile(finalPath);
    const job: FileJob = {
      entry,
      wirePath: entry.path,
      finalPath,
      tempPath,
      handle,
      parent,
      described: 0,
      chunkCount: 0,
      written: 0,
      digest: undefined,
      committing: false,
    };
    parent.pending++;
    this.#openFiles.add(job);
    this.#current = job;
    this.#bytesKnown += entry.size;
  }

  async #onChunks(chunks: ChunkRef[]): Promise<void> {
    const job = this.#current;
    if (job === undefined) throw protocolError("chunks outside a file");
    for (const chunk of chunks) {
      if (chunk.offset !== job.described || chunk.size === 0 || chunk.size > MAX_CHUNK_SIZE) {
        throw protocolError(`chunk at ${chunk.offset} of "${job.wirePath}" does not follow the previous one`);
      }
      if (chunk.offset + chunk.size > job.entry.size)
        throw protocolError(`chunks of "${job.wirePath}" run past its size`);
      job.described += chunk.size;
      job.chunkCount++;
      while (this.#inFlightBytes + chunk.size > this.#windowBytes || this.#batch.length >= BATCH_CHUNKS) {
        await this.#waitForProgress();
      }
      this.#enqueue({
        chunk: {
          hash: chunk.hash,
          size: chunk.size,
          path: job.wirePath,
          offset: chunk.offset,
          fd: job.handle.fd,
        },
        job,
      });
    }
  }

  #onFileEnd(digest: FileEnd): void {
    const job = this.#current;
    if (job === undefined) throw protocolError("file end outside a file");
    if (
      digest.size !== job.entry.size ||
      job.described !== job.entry.size ||
      digest.chunkCount !== job.chunkCount
    ) {
      throw protocolError(`chunks of "${job.wirePath}" do not cover the file`);
    }
    job.digest = digest;
    this.#current = undefined;
    this.#maybeCommit(job);
  }

  #enqueue(fetch: Fetch): void {
    this.#batch.push(fetch);
    this.#batchBytes += fetch.chunk.size;
    this.#inFlightBytes += fetch.chunk.size;
    if (this.#batchBytes >= BATCH_BYTES || this.#batch.length >= BATCH_CHUNKS) {
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

  /** Hands the batch to a stream as one GET_CHUNKS request, unless enough are open already. */
  #flush(): void {
    if (this.#batch.length === 0 || this.#failure !== undefined) return;
    if (this.#requestsOpen >= MAX_OPEN_REQUESTS_PER_STREAM * this.#streams.size) return;
    const batch = this.#batch;
    this.#batch = [];
    this.#batchBytes = 0;
    this.#requestsOpen++;
    const fetching = this.#streams
      .fetch(batch.map((fetch) => fetch.chunk))
      .then(() => this.#written(batch))
      .finally(() => {
        this.#requestsOpen--;
        this.#flush();
      });
    this.#track(fetching);
  }

  /** Accounts a batch the streams have verified and written. */
  #written(batch: Fetch[]): void {
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
    this.#track(this.#commit(job));
  }

  /** Metadata, close, rename: the file appears under its name only now, complete and verified. */
  async #commit(job: FileJob): Promise<void> {
    const { handle, entry } = job;
    await handle.chmod(entry.mode & 0o777);
    await handle.utimes(entry.mtimeMs / 1000, entry.mtimeMs / 1000);
    await handle.close();
    this.#throwIfFailed();
    await commitPath(job.tempPath, job.finalPath);
    this.#openFiles.delete(job);
    this.#summary.files++;
    this.#reportProgress();
    await this.#childDone(job.parent);
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
    await chmod(dir.localPath, entry.mode & 0o777);
    await utimes(dir.localPath, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
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

function parentWirePath(wirePath: string): string {
  const slash = wirePath.lastIndexOf("/");
  return slash < 0 ? "" : wirePath.slice(0, slash);
}

function protocolError(message: string): TeleportError {
  return new TeleportError(ErrorCode.PROTOCOL, message);
}
