/**
 * Data streams: the connections that carry a pull's chunks, each in its own worker thread. A
 * stream connects and authenticates like any client, then takes batches of chunk requests; its
 * worker decrypts, verifies every chunk against its BLAKE3 hash and writes it at its offset into
 * a file the main thread opened, so the bulk work of a pull runs on as many cores as there are
 * streams while the main thread only plans. See stream-worker.ts for the worker's side.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { ErrorCode, isErrorCode, TeleportError } from "../errors.js";
import { type ChunkRequest, HASH_SIZE } from "../wire/messages.js";

/** A chunk to fetch and where its bytes go: `fd` is a file the caller keeps open until done. */
export interface ChunkWrite extends ChunkRequest {
  fd: number;
}

export interface StreamStats {
  /** Chunk bytes this stream fetched, verified and wrote. */
  bytes: number;
  /** Most bytes of chunk buffers it held at once. */
  peakBufferBytes: number;
}

export interface StreamWorkerData {
  link: string;
}

export type ToStream = { op: "fetch"; id: number; batch: PackedBatch } | { op: "close"; abort: boolean };

/**
 * A batch of chunk writes as a handful of typed arrays: structured cloning copies each Buffer
 * separately, so 32 chunk objects with their hashes cost far more to post than one array of
 * 32 hashes (the batch is rebuilt in the worker, hashes as views into one buffer).
 */
export interface PackedBatch {
  hashes: Uint8Array;
  offsets: Float64Array;
  sizes: Uint32Array;
  fds: Int32Array;
  /** Index into `paths` per chunk. */
  pathIndexes: Uint32Array;
  paths: string[];
}

export function packBatch(chunks: readonly ChunkWrite[]): PackedBatch {
  const count = chunks.length;
  const batch: PackedBatch = {
    hashes: new Uint8Array(count * HASH_SIZE),
    offsets: new Float64Array(count),
    sizes: new Uint32Array(count),
    fds: new Int32Array(count),
    pathIndexes: new Uint32Array(count),
    paths: [],
  };
  let lastPath: string | undefined;
  chunks.forEach((chunk, i) => {
    batch.hashes.set(chunk.hash, i * HASH_SIZE);
    batch.offsets[i] = chunk.offset;
    batch.sizes[i] = chunk.size;
    batch.fds[i] = chunk.fd;
    if (chunk.path !== lastPath) {
      batch.paths.push(chunk.path);
      lastPath = chunk.path;
    }
    batch.pathIndexes[i] = batch.paths.length - 1;
  });
  return batch;
}

export function unpackBatch(batch: PackedBatch): ChunkWrite[] {
  const hashes = Buffer.from(batch.hashes.buffer, batch.hashes.byteOffset, batch.hashes.byteLength);
  return Array.from(batch.sizes, (size, i) => ({
    hash: hashes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE),
    size,
    offset: batch.offsets[i] as number,
    fd: batch.fds[i] as number,
    path: batch.paths[batch.pathIndexes[i] as number] as string,
  }));
}

export type FromStream =
  | { op: "ready" }
  | { op: "done"; id: number }
  | { op: "failed"; id: number; error: SerializedError }
  /** The stream could not connect: every batch sent to it fails with this. */
  | { op: "broken"; error: SerializedError }
  | { op: "closed"; stats: StreamStats };

export interface SerializedError {
  code: string;
  message: string;
}

export function serializeError(error: TeleportError): SerializedError {
  return { code: error.code, message: error.message };
}

function deserializeError({ code, message }: SerializedError): TeleportError {
  return new TeleportError(isErrorCode(code) ? code : ErrorCode.INTERNAL, message);
}

/** Streams by default: one per core, since each keeps a core busy at loopback speed. */
export function defaultStreamCount(): number {
  return Math.max(2, Math.min(4, availableParallelism()));
}

const CLOSE_TIMEOUT_MS = 5000;
/**
 * A stream allocates fast (a frame object and a TLS read buffer per 16 KiB record), and garbage
 * in a large young generation holds its ArrayBuffers until a scavenge. With the default limit a
 * 1 GiB pull over 2 streams peaked at 170 MB RSS; with 2 MiB at 141-144 MB, same speed (3 runs).
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 2 };
const WORKER_URL = new URL("./stream-worker.js", import.meta.url);

interface OpenFetch {
  resolve(): void;
  reject(error: TeleportError): void;
}

class Stream {
  readonly worker: Worker;
  readonly ready: Promise<void>;
  readonly exited: Promise<void>;
  readonly #open = new Map<number, OpenFetch>();
  #nextId = 1;
  outstandingBytes = 0;
  broken: TeleportError | undefined;
  stats: StreamStats = { bytes: 0, peakBufferBytes: 0 };

  constructor(link: string) {
    const data: StreamWorkerData = { link };
    this.worker = new Worker(WORKER_URL, { workerData: data, resourceLimits: WORKER_LIMITS });
    let onReady!: () => void;
    let onBroken!: (error: TeleportError) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      onReady = resolve;
      onBroken = reject;
    });
    this.ready.catch(() => {}); // awaited by fetches; a stream nobody used may fail unobserved
    this.worker.on("message", (message: FromStream) => {
      switch (message.op) {
        case "ready":
          onReady();
          break;
        case "done":
          this.#settle(message.id)?.resolve();
          break;
        case "failed":
          this.#settle(message.id)?.reject(deserializeError(message.error));
          break;
        case "broken":
          this.#break(deserializeError(message.error), onBroken);
          break;
        case "closed":
          this.stats = message.stats;
          break;
      }
    });
    this.worker.on("error", (err) => {
      this.#break(new TeleportError(ErrorCode.INTERNAL, `data stream failed: ${err.message}`), onBroken);
    });
    this.exited = new Promise<void>((resolve) => {
      this.worker.once("exit", () => {
        this.#break(new TeleportError(ErrorCode.CONNECTION, "data stream closed"), onBroken);
        resolve();
      });
    });
  }

  async fetch(chunks: ChunkWrite[], bytes: number): Promise<void> {
    this.outstandingBytes += bytes;
    try {
      await this.ready;
      if (this.broken !== undefined) throw this.broken;
      const id = this.#nextId++;
      await new Promise<void>((resolve, reject) => {
        this.#open.set(id, { resolve, reject });
        this.#post({ op: "fetch", id, batch: packBatch(chunks) });
      });
    } finally {
      this.outstandingBytes -= bytes;
    }
  }

  close(abort: boolean): void {
    this.#post({ op: "close", abort });
  }

  #post(message: ToStream): void {
    this.worker.postMessage(message);
  }

  #settle(id: number): OpenFetch | undefined {
    const open = this.#open.get(id);
    this.#open.delete(id);
    return open;
  }

  #break(error: TeleportError, rejectReady: (error: TeleportError) => void): void {
    if (this.broken !== undefined) return;
    this.broken = error;
    rejectReady(error);
    for (const open of this.#open.values()) open.reject(error);
    this.#open.clear();
  }
}

/**
 * A pull's data streams. Each batch goes to the stream with the fewest bytes outstanding, so a
 * slow stream gets less work. A stream that breaks fails its open batches.
 */
export class StreamPool {
  readonly #streams: Stream[];
  #closing: Promise<StreamStats[]> | undefined;

  /** Starts `count` streams to the host at `link`; they connect while the caller plans. */
  constructor(link: string, count: number) {
    if (!Number.isInteger(count) || count < 1)
      throw new RangeError(`stream count must be >= 1, got ${count}`);
    this.#streams = Array.from({ length: count }, () => new Stream(link));
  }

  get size(): number {
    return this.#streams.length;
  }

  /** Fetches, verifies and writes a batch of chunks; resolves once every byte is written. */
  fetch(chunks: ChunkWrite[]): Promise<void> {
    if (this.#closing !== undefined)
      return Promise.reject(new TeleportError(ErrorCode.CANCELLED, "streams closed"));
    let bytes = 0;
    for (const chunk of chunks) bytes += chunk.size;
    return this.#pick().fetch(chunks, bytes);
  }

  #pick(): Stream {
    let best: Stream | undefined;
    for (const stream of this.#streams) {
      if (stream.broken !== undefined) continue;
      if (best === undefined || stream.outstandingBytes < best.outstandingBytes) best = stream;
    }
    // With every stream broken, the first one reports why.
    return best ?? (this.#streams[0] as Stream);
  }

  /**
   * Closes every stream and waits for its worker to exit. With `abort`, requests still open are
   * cancelled; either way every write a worker started has finished when this resolves, so the
   * caller may then close the files it handed out.
   */
  close(options: { abort?: boolean } = {}): Promise<StreamStats[]> {
    this.#closing ??= (async () => {
      for (const stream of this.#streams) stream.close(options.abort === true);
      // A worker that does not exit in time is stopped: it has no write left by then (a graceful
      // close follows the last batch; an abort waits for the writes before it answers).
      const timer = setTimeout(() => {
        for (const stream of this.#streams) void stream.worker.terminate();
      }, CLOSE_TIMEOUT_MS);
      await Promise.all(this.#streams.map((stream) => stream.exited));
      clearTimeout(timer);
      return this.#streams.map((stream) => stream.stats);
    })();
    return this.#closing;
  }
}
