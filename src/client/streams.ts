/**
 * The stream pool: the connections that carry a pull's chunks, spread over a few worker threads
 * (one per core) so that decryption, verification and writes run on every core while the main
 * thread plans.
 *
 * - Batches wait in one queue; a stream takes the next one whenever it has room (its share of
 *   the bytes in flight). A slow stream takes less, a fast one more: the work goes where it
 *   moves, without per-stream queues to rebalance.
 * - A stream that dies (its connection cut, its host gone away) hands its open batches back to
 *   the front of the queue, where the other streams take them, and is replaced. Chunks it had
 *   already written are written again, with the same verified bytes. A batch is given up only
 *   after MAX_ATTEMPTS streams failed it, and the pull only when no stream can connect.
 * - The number of streams and the bytes in flight are tuned to the path (stream-tuner.ts) unless
 *   pinned with `--streams N`.
 * - Memory stays bounded: a stream holds at most a write slice and the frame it is reading, and
 *   each thread counts the chunk memory it holds at its peak (`memoryBoundBytes` is the bound).
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { HEADROOM as POOL_HEADROOM_BYTES } from "../engine/buffer-pool.js";
import { ErrorCode, isErrorCode, TeleportError } from "../errors.js";
import { parseLink } from "../transport/link.js";
import type { TransportKind } from "../transport/transport.js";
import { type ChunkRequest, HASH_SIZE } from "../wire/messages.js";
import { CompressionPolicy, isLoopbackHost } from "./compression-policy.js";
import { MIN_PROBE_RTT_MS, StreamTuner, type TuningStep } from "./stream-tuner.js";
import { type TransportCounts, TransportTrial, type TrialAction, type TrialStep } from "./transport-trial.js";

/** A chunk to fetch and where its bytes go: `fd` is a file the caller keeps open until done. */
export interface ChunkWrite extends ChunkRequest {
  fd: number;
}

export interface StreamStats {
  /** Chunk bytes this stream fetched, verified and wrote. */
  bytes: number;
  /** What those chunks took on the wire (less where they came compressed). */
  wireBytes: number;
}

export interface PoolOptions {
  /** The share link the streams connect to. */
  link: string;
  /** `--streams N`: this many streams throughout; tuned to the path when unset. */
  streams?: number;
  /** Bytes in flight to start with, and the least the tuner will use. */
  windowBytes?: number;
  /** Measures a round trip to the host (a ping on the control connection), for the tuner. */
  ping?: () => Promise<number>;
  /** A round trip measured before the pool starts, in milliseconds: it picks the first count. */
  rttMs?: number;
  /** Each stream's idle timeout: how long a silent host is waited for (default 30 s). */
  idleTimeoutMs?: number;
  /** What to ask the host to compress (default: nothing). */
  compression?: CompressionPolicy;
  /** The client's id (Hello.clientId), for the streams to say they belong to it. */
  clientId?: Buffer;
  /** The transport the streams start on: the one the control connection got through on (default TCP). */
  transport?: TransportKind;
  /**
   * The other transport, when the streams may move to it (`--transport auto`, and the host
   * listens on both): it is tried during the pull and used if it delivers more (transport-trial.ts).
   */
  alternative?: TransportKind;
  /** Told when the streams move to the other transport, and why. */
  onNotice?: (message: string) => void;
  /** The streams connect without TLS (`pull --no-encryption`; the host has agreed). */
  plaintext?: boolean;
}

/** What the pool did, for the pull's summary. */
export interface PoolReport {
  /** Every stream that carried data, in the order they were opened. */
  streams: StreamStats[];
  /** Most streams open at once. */
  peakStreams: number;
  /** Streams whose connection failed during the pull (each was replaced). */
  streamsLost: number;
  /** Batches handed to another stream after theirs failed or was cut off (a lost transport trial). */
  batchesReissued: number;
  /** Most chunk-buffer bytes held at once, summed over the threads, and the bound it stays under. */
  peakBufferBytes: number;
  memoryBoundBytes: number;
  /** The last window of bytes in flight. */
  windowBytes: number;
  /** The lowest round trip measured to the host, in milliseconds (null if none was). */
  minRttMs: number | null;
  /** How the stream count changed: when, to what, on what measurement. */
  tuning: TuningStep[];
  /** Chunk bytes each transport delivered. */
  bytesByTransport: TransportCounts;
  /** The transport trials (under `auto`): when, what each delivered per stream, what was kept. */
  transportTrials: TrialStep[];
}

export interface StreamThreadData {
  link: string;
  /** Of each stream's connection (see Connection). */
  idleTimeoutMs: number | undefined;
  clientId: Uint8Array | undefined;
  plaintext: boolean;
  /**
   * Bytes of verified chunks this thread has received, for the tuner: over TCP at [0], over QUIC
   * at [1] (each wraps at 2^32).
   */
  delivered: Int32Array;
}

/** Where a transport's bytes are counted in StreamThreadData.delivered. */
export const DELIVERED_INDEX: Readonly<Record<TransportKind, number>> = { tcp: 0, quic: 1 };

export type ToThread =
  | { op: "open"; stream: number; transport: TransportKind }
  | { op: "fetch"; stream: number; id: number; batch: PackedBatch; compressLevel: number }
  /**
   * Closes one stream once its open batches are done (the tuner wants fewer), or at once with
   * `abort` (its transport lost a trial: its batches go back to the queue instead of waiting on it).
   */
  | { op: "drop"; stream: number; abort: boolean }
  | { op: "close"; abort: boolean };

export type FromThread =
  | { op: "ready"; stream: number }
  | { op: "done"; id: number }
  | { op: "failed"; id: number; error: SerializedError }
  /** The stream's connection failed or could not be made. */
  | { op: "lost"; stream: number; error: SerializedError }
  | { op: "closed"; streams: { stream: number; stats: StreamStats }[]; peakBufferBytes: number };

export interface SerializedError {
  code: string;
  message: string;
}

export function serializeError(error: TeleportError): SerializedError {
  return { code: error.code, message: error.detail }; // the code goes back in front on the other side
}

function deserializeError({ code, message }: SerializedError): TeleportError {
  return new TeleportError(isErrorCode(code) ? code : ErrorCode.INTERNAL, message);
}

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

/**
 * Page-cache writes are issued 256 KiB at a time: chunks that arrive back to back are gathered
 * into one writev up to that size, larger ones are split. On these VMs larger writes cost more
 * system time per byte (the kernel takes larger folios, from memory the hypervisor reclaimed):
 * `dd` of 1 GiB after `sync` took 0.33-0.37 s of system time with bs=256K, 0.72-0.88 s with
 * bs=1M and 0.9-1.0 s with bs=64M (3 runs each); and smaller ones cost more per call: one write
 * per 32 KiB chunk took 3x the write time of 256 KiB writes (0.77 vs 0.25 s per 512 MiB).
 */
export const WRITE_SLICE_BYTES = 256 * 1024;
/**
 * Streams a tuned pull starts with on a short path: one per thread (loopback 1 GiB, 4 runs each:
 * 2 streams took 2.8-3.1 CPU-s, 4 streams 3.1-3.3 and no less time).
 */
const STREAMS_PER_THREAD = 1;
/**
 * Streams a tuned pull starts with on a path long enough to probe (see stream-tuner.ts): TCP
 * ramps up one round trip at a time, so on a long path more streams ramp up sooner, and they
 * save the tuner a step when the path needs many.
 */
const LONG_PATH_STREAMS = 16;
/**
 * The most streams a tuned pull opens. On a 1 Gbit/s, 50 ms path with 0.1% loss each reno stream
 * carries ~9 Mbit/s (Mathis: MSS / RTT x 1.22 / sqrt(loss)): pinned at 64 and 128 streams,
 * 256 MiB moved at 499 and 494 Mbit/s (medians of 3, `parallel_streams`), 32 streams at 362.
 */
const MAX_TUNED_STREAMS = 128;
/** The most `--streams` accepts. */
export const MAX_STREAMS = 256;
/**
 * Bytes in flight to start with; the tuner doubles them while the rate is window-bound. Not
 * more: what a stream is handed, it alone carries, and at reno's ~9 Mbit/s per stream on a
 * lossy 50 ms path a 16 MiB window spread over 4 streams held 3.6 s of work each, which the
 * streams opened later could not take (a 256 MiB pull: 370-430 Mbit/s tuned vs 650 pinned at
 * 128 streams).
 */
export const DEFAULT_WINDOW_BYTES = 4 * 1024 * 1024;
/** A 10 Gbit/s path with 100 ms RTT holds 125 MB. */
const MAX_WINDOW_BYTES = 256 * 1024 * 1024;
/** Batches are sized so that each stream has two in flight: one arriving while the next is asked for. */
const BATCHES_PER_STREAM = 2;
const MIN_BATCH_BYTES = 128 * 1024;
const MAX_BATCH_BYTES = 2 * 1024 * 1024;
/** Streams that fail a batch before it fails the pull. */
const MAX_ATTEMPTS = 3;
/** Replacement connections a pull may open beyond its streams, before a lost stream stays lost. */
const SPARE_CONNECTIONS = 8;
const TICK_MS = 50;
const PING_EVERY_MS = 250;
const CLOSE_TIMEOUT_MS = 5000;
/**
 * A thread allocates fast (a frame object and a TLS read buffer per 16 KiB record), and garbage
 * in a large young generation holds its ArrayBuffers until a scavenge. With the default limit a
 * 1 GiB pull over 2 streams peaked at 170 MB RSS; with 2 MiB at 141-144 MB, same speed (3 runs).
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 2 };
const WORKER_URL = new URL("./stream-worker.js", import.meta.url);
/**
 * Chunk memory one stream can hold, given the largest chunk it is asked for: a write slice
 * gathered (see stream-worker.ts) and the frame arriving, each in pooled buffers of up to twice
 * their size plus headroom (pool classes are powers of two).
 */
function streamMemoryBound(largestChunk: number): number {
  return 2 * (WRITE_SLICE_BYTES + largestChunk) + 2 * POOL_HEADROOM_BYTES;
}

/** Threads for data streams: one per core (up to 4), at least two so a stream never waits on another. */
function defaultThreadCount(): number {
  return Math.max(2, Math.min(4, availableParallelism()));
}

interface Batch {
  id: number;
  chunks: ChunkWrite[];
  bytes: number;
  attempts: number;
  stream: Stream | undefined;
  resolve(): void;
  reject(error: TeleportError): void;
}

interface Stream {
  id: number;
  thread: Thread;
  transport: TransportKind;
  state: "connecting" | "ready" | "dropping" | "lost";
  inFlightBytes: number;
  /** Dropped with its batches cut off: they are handed to other streams, not counted as failures. */
  abandoned: boolean;
}

class Thread {
  readonly worker: Worker;
  readonly delivered = new Int32Array(new SharedArrayBuffer(8));
  readonly exited: Promise<void>;
  readonly #lastDelivered: TransportCounts = { tcp: 0, quic: 0 };
  streams = 0;
  report: Extract<FromThread, { op: "closed" }> | undefined;

  constructor(
    options: Pick<StreamThreadData, "link" | "idleTimeoutMs" | "clientId" | "plaintext">,
    onMessage: (message: FromThread) => void,
    onExit: (error: TeleportError) => void,
  ) {
    const data: StreamThreadData = { ...options, delivered: this.delivered };
    this.worker = new Worker(WORKER_URL, { workerData: data, resourceLimits: WORKER_LIMITS });
    this.worker.on("message", (message: FromThread) => {
      if (message.op === "closed") this.report = message;
      onMessage(message);
    });
    this.worker.on("error", (err) =>
      onExit(new TeleportError(ErrorCode.INTERNAL, `data stream failed: ${err.message}`)),
    );
    this.exited = new Promise<void>((resolve) => {
      this.worker.once("exit", () => {
        onExit(new TeleportError(ErrorCode.CONNECTION, "data stream thread ended"));
        resolve();
      });
    });
  }

  /** Adds the bytes received over `kind` since the last call to `into` (the counters wrap at 2^32). */
  takeDelivered(kind: TransportKind, into: TransportCounts): void {
    const now = Atomics.load(this.delivered, DELIVERED_INDEX[kind]);
    into[kind] += (now - this.#lastDelivered[kind]) >>> 0;
    this.#lastDelivered[kind] = now;
  }

  post(message: ToThread): void {
    this.worker.postMessage(message);
  }
}

export class StreamPool {
  readonly #link: string;
  readonly #compression: CompressionPolicy;
  readonly #loopback: boolean;
  readonly #threads: Thread[];
  readonly #streams = new Map<number, Stream>();
  readonly #batches = new Map<number, Batch>();
  readonly #queue: Batch[] = [];
  readonly #tuner: StreamTuner;
  readonly #trial: TransportTrial | undefined;
  /** The transport new streams are opened on. */
  #transport: TransportKind;
  readonly #ping: (() => Promise<number>) | undefined;
  readonly #onNotice: ((message: string) => void) | undefined;
  readonly #ticker: NodeJS.Timeout;
  readonly #order: number[] = [];
  #nextStreamId = 1;
  #nextBatchId = 1;
  readonly #delivered: TransportCounts = { tcp: 0, quic: 0 };
  #pinging = false;
  #lastPingAt = 0;
  #spares = SPARE_CONNECTIONS;
  #peakStreams = 0;
  #largestChunk = 0;
  #streamsLost = 0;
  #batchesReissued = 0;
  #broken: TeleportError | undefined;
  #closing: Promise<PoolReport> | undefined;

  constructor(options: PoolOptions) {
    const pinned = options.streams;
    if (pinned !== undefined && (!Number.isInteger(pinned) || pinned < 1 || pinned > MAX_STREAMS))
      throw new RangeError(`stream count must be 1 to ${MAX_STREAMS}, got ${pinned}`);
    this.#link = options.link;
    this.#compression = options.compression ?? new CompressionPolicy("off");
    this.#loopback = isLoopbackHost(parseLink(options.link).host);
    this.#ping = options.ping;
    this.#onNotice = options.onNotice;
    const threadCount = Math.min(defaultThreadCount(), pinned ?? Number.POSITIVE_INFINITY);
    const longPath = options.rttMs !== undefined && options.rttMs >= MIN_PROBE_RTT_MS;
    const shortPathStreams = threadCount * STREAMS_PER_THREAD;
    const initial = pinned ?? (longPath ? LONG_PATH_STREAMS : shortPathStreams);
    const minWindow = options.windowBytes ?? DEFAULT_WINDOW_BYTES;
    this.#tuner = new StreamTuner(
      {
        initialStreams: initial,
        shortPathStreams,
        maxStreams: pinned ?? Math.max(initial, MAX_TUNED_STREAMS),
        pinned: pinned !== undefined,
        minWindowBytes: minWindow,
        maxWindowBytes: Math.max(minWindow, MAX_WINDOW_BYTES),
      },
      performance.now(),
    );
    if (options.rttMs !== undefined) this.#tuner.rtt(options.rttMs);
    this.#transport = options.transport ?? "tcp";
    if (options.alternative !== undefined && options.alternative !== this.#transport)
      this.#trial = new TransportTrial(this.#transport, options.alternative, performance.now());
    this.#threads = Array.from(
      { length: threadCount },
      () =>
        new Thread(
          {
            link: this.#link,
            idleTimeoutMs: options.idleTimeoutMs,
            clientId: options.clientId,
            plaintext: options.plaintext === true,
          },
          (message) => this.#onMessage(message),
          (error) => this.#onThreadExit(error),
        ),
    );
    for (let i = 0; i < initial; i++) this.#open();
    this.#ticker = setInterval(() => this.#tick(), TICK_MS);
  }

  /**
   * Bytes the caller may have requested and not yet written. A transport trial's streams come on
   * top of the tuner's count, with their own share on top of its window: the streams already
   * carrying the pull keep theirs, whatever the trial's deliver.
   */
  get windowBytes(): number {
    const extra = this.#trial?.extraStreams ?? 0;
    return Math.round(this.#tuner.windowBytes * (1 + extra / this.#tuner.streams));
  }

  /** The batch size that gives each stream BATCHES_PER_STREAM batches of the window. */
  get batchBytes(): number {
    const share = this.#tuner.windowBytes / (this.#tuner.streams * BATCHES_PER_STREAM);
    return Math.max(MIN_BATCH_BYTES, Math.min(MAX_BATCH_BYTES, share));
  }

  /** Fetches, verifies and writes a batch of chunks; resolves once every byte is written. */
  fetch(chunks: ChunkWrite[]): Promise<void> {
    if (this.#closing !== undefined)
      return Promise.reject(new TeleportError(ErrorCode.CANCELLED, "streams closed"));
    if (this.#broken !== undefined) return Promise.reject(this.#broken);
    return new Promise<void>((resolve, reject) => {
      let bytes = 0;
      for (const chunk of chunks) {
        bytes += chunk.size;
        if (chunk.size > this.#largestChunk) this.#largestChunk = chunk.size;
      }
      const batch: Batch = {
        id: this.#nextBatchId++,
        chunks,
        bytes,
        attempts: 0,
        stream: undefined,
        resolve,
        reject,
      };
      this.#batches.set(batch.id, batch);
      this.#queue.push(batch);
      this.#dispatch();
    });
  }

  /** Hands queued batches to streams with room, the least loaded first. */
  #dispatch(): void {
    const perStream = Math.max(
      this.#tuner.windowBytes / this.#tuner.streams,
      BATCHES_PER_STREAM * this.batchBytes,
    );
    while (this.#queue.length > 0) {
      let best: Stream | undefined;
      for (const stream of this.#streams.values()) {
        if (stream.state !== "ready" || stream.inFlightBytes >= perStream) continue;
        if (best === undefined || stream.inFlightBytes < best.inFlightBytes) best = stream;
      }
      if (best === undefined) return;
      const batch = this.#queue.shift() as Batch;
      batch.stream = best;
      batch.attempts++;
      best.inFlightBytes += batch.bytes;
      best.thread.post({
        op: "fetch",
        stream: best.id,
        id: batch.id,
        batch: packBatch(batch.chunks),
        compressLevel: this.#compression.level({ minRttMs: this.#tuner.minRttMs, loopback: this.#loopback }),
      });
    }
  }

  #onMessage(message: FromThread): void {
    switch (message.op) {
      case "ready": {
        const stream = this.#streams.get(message.stream);
        if (stream?.state === "connecting") stream.state = "ready";
        this.#dispatch();
        break;
      }
      case "done": {
        const batch = this.#settle(message.id);
        batch?.resolve();
        this.#dispatch();
        break;
      }
      case "failed": {
        const abandoned = this.#batches.get(message.id)?.stream?.abandoned === true;
        const batch = this.#settle(message.id);
        if (batch === undefined) break;
        const error = deserializeError(message.error);
        if (abandoned) batch.attempts--; // not this batch's failure: its stream was cut off
        if (
          (abandoned || isTransportFailure(error)) &&
          batch.attempts < MAX_ATTEMPTS &&
          this.#closing === undefined
        ) {
          this.#batchesReissued++;
          this.#batches.set(batch.id, batch);
          this.#queue.unshift(batch);
          this.#dispatch();
        } else {
          batch.reject(error);
        }
        break;
      }
      case "lost":
        this.#onLost(message.stream, deserializeError(message.error));
        break;
      case "closed":
        break;
    }
  }

  /** Takes a batch off its stream; the caller resolves, rejects or requeues it. */
  #settle(id: number): Batch | undefined {
    const batch = this.#batches.get(id);
    if (batch === undefined) return undefined;
    this.#batches.delete(id);
    const stream = batch.stream;
    if (stream !== undefined) {
      stream.inFlightBytes -= batch.bytes;
    }
    batch.stream = undefined;
    return batch;
  }

  #onLost(id: number, error: TeleportError): void {
    const stream = this.#streams.get(id);
    if (stream === undefined || stream.state === "lost") return;
    const wasDropping = stream.state === "dropping";
    stream.state = "lost";
    this.#streams.delete(id);
    stream.thread.streams--;
    if (this.#closing !== undefined || wasDropping) return;
    if (stream.transport !== this.#transport) {
      // A trial's stream: the trial ends (its open batches come back as "failed" and are requeued).
      this.#act(this.#trial?.lost(performance.now()));
      return;
    }
    this.#streamsLost++;
    // Its open batches come back as "failed" and are requeued; it is replaced while spares last.
    if (this.#spares > 0) {
      this.#spares--;
      this.#open();
    } else if (![...this.#streams.values()].some((s) => s.state === "connecting" || s.state === "ready")) {
      this.#breakWith(error); // what is left is being dropped: nothing would ever take the queue
    }
  }

  #onThreadExit(error: TeleportError): void {
    if (this.#closing !== undefined) return;
    this.#breakWith(error);
  }

  /** No stream is left to carry anything: every batch waiting or open fails with `error`. */
  #breakWith(error: TeleportError): void {
    this.#broken ??= error;
    for (const batch of this.#batches.values()) batch.reject(this.#broken);
    this.#batches.clear();
    this.#queue.length = 0;
  }

  /** Opens a stream on the thread with the fewest. */
  #open(transport = this.#transport): void {
    const thread = this.#threads.reduce((a, b) => (b.streams < a.streams ? b : a));
    const stream: Stream = {
      id: this.#nextStreamId++,
      thread,
      transport,
      state: "connecting",
      inFlightBytes: 0,
      abandoned: false,
    };
    thread.streams++;
    this.#streams.set(stream.id, stream);
    this.#order.push(stream.id);
    this.#peakStreams = Math.max(this.#peakStreams, this.#streams.size);
    thread.post({ op: "open", stream: stream.id, transport });
  }

  /** Streams of `transport` not being dropped, the most recently opened first. */
  #active(transport: TransportKind): Stream[] {
    return [...this.#streams.values()]
      .filter((s) => s.transport === transport && s.state !== "dropping")
      .reverse();
  }

  /**
   * Closes the most recently opened streams of `transport` once their batches are done, or at
   * once with `abort`, their batches handed to the other streams.
   */
  #drop(count: number, transport: TransportKind, abort = false): void {
    for (const stream of this.#active(transport).slice(0, count)) {
      stream.state = "dropping";
      stream.abandoned = abort;
      stream.thread.post({ op: "drop", stream: stream.id, abort });
    }
  }

  /** Opens or drops streams of the current transport to the tuner's count. */
  #resize(): void {
    const active = this.#active(this.#transport).length;
    for (let i = active; i < this.#tuner.streams; i++) this.#open();
    if (active > this.#tuner.streams) this.#drop(active - this.#tuner.streams, this.#transport);
  }

  /** Carries out what the transport trial decided. */
  #act(action: TrialAction | undefined): void {
    if (action === undefined) return;
    switch (action.op) {
      case "try":
        for (let i = 0; i < action.streams; i++) this.#open(action.transport);
        break;
      case "switch": {
        const from = this.#transport;
        this.#onNotice?.(
          `${NAMES[action.transport]} delivers ${action.gain.toFixed(1)}x ${NAMES[from]}'s rate per stream here; ` +
            `moving the data streams to ${NAMES[action.transport]}`,
        );
        this.#transport = action.transport;
        this.#resize();
        // The slower transport's batches would hold the pull's tail: they move at once.
        this.#drop(Number.POSITIVE_INFINITY, from, true);
        break;
      }
      case "end":
        this.#drop(Number.POSITIVE_INFINITY, action.transport, true);
        break;
    }
    this.#dispatch();
  }

  #tick(): void {
    const now = performance.now();
    for (const thread of this.#threads) {
      thread.takeDelivered("tcp", this.#delivered);
      thread.takeDelivered("quic", this.#delivered);
    }
    if (this.#ping !== undefined && !this.#pinging && now - this.#lastPingAt >= PING_EVERY_MS) {
      this.#pinging = true;
      this.#lastPingAt = now;
      this.#ping()
        .then((ms) => this.#tuner.rtt(ms))
        .catch(() => {})
        .finally(() => {
          this.#pinging = false;
        });
    }
    // Measure only while there is work: a pull waiting on its manifest is not a slow path.
    if (this.#batches.size === 0) return;
    const saturated = this.#saturated();
    const delivered = this.#delivered.tcp + this.#delivered.quic;
    if (this.#tuner.observe(now, delivered, saturated)) {
      this.#resize();
      this.#dispatch();
    }
    const minRttMs = this.#tuner.minRttMs ?? 0;
    this.#act(
      this.#trial?.observe({
        nowMs: now,
        delivered: this.#delivered,
        ready: this.#readyCounts(),
        streams: this.#tuner.streams,
        steady: saturated && this.#tuner.settled && minRttMs >= MIN_PROBE_RTT_MS,
        minRttMs,
      }),
    );
  }

  #readyCounts(): TransportCounts {
    const ready: TransportCounts = { tcp: 0, quic: 0 };
    for (const stream of this.#streams.values()) if (stream.state === "ready") ready[stream.transport]++;
    return ready;
  }

  /**
   * Whether the streams have the work they can take: batches waiting, or at least half the window
   * in flight. Otherwise the caller is short of work, and the rate measures that, not the path.
   */
  #saturated(): boolean {
    if (this.#queue.length > 0) return true;
    let inFlight = 0;
    for (const stream of this.#streams.values()) inFlight += stream.inFlightBytes;
    return inFlight >= this.#tuner.windowBytes / 2;
  }

  /**
   * Closes every stream and waits for its thread to exit. With `abort`, requests still open are
   * cancelled; either way every write a thread started has finished when this resolves, so the
   * caller may then close the files it handed out.
   */
  close(options: { abort?: boolean } = {}): Promise<PoolReport> {
    this.#closing ??= (async () => {
      clearInterval(this.#ticker);
      for (const thread of this.#threads) thread.post({ op: "close", abort: options.abort === true });
      // A thread that does not exit in time is stopped: it has no write left by then (a graceful
      // close follows the last batch; an abort waits for the writes before it answers).
      const timer = setTimeout(() => {
        for (const thread of this.#threads) void thread.worker.terminate();
      }, CLOSE_TIMEOUT_MS);
      await Promise.all(this.#threads.map((thread) => thread.exited));
      clearTimeout(timer);
      this.#breakWith(new TeleportError(ErrorCode.CANCELLED, "streams closed"));
      return this.#report();
    })();
    return this.#closing;
  }

  #report(): PoolReport {
    const stats = new Map<number, StreamStats>();
    let peakBufferBytes = 0;
    for (const thread of this.#threads) {
      for (const { stream, stats: s } of thread.report?.streams ?? []) stats.set(stream, s);
      peakBufferBytes += thread.report?.peakBufferBytes ?? 0;
    }
    return {
      streams: this.#order.flatMap((id) => {
        const s = stats.get(id);
        return s !== undefined && s.bytes > 0 ? [s] : [];
      }),
      peakStreams: this.#peakStreams,
      streamsLost: this.#streamsLost,
      batchesReissued: this.#batchesReissued,
      peakBufferBytes,
      memoryBoundBytes: this.#peakStreams * streamMemoryBound(this.#largestChunk),
      windowBytes: this.#tuner.windowBytes,
      minRttMs: this.#tuner.minRttMs ?? null,
      tuning: this.#tuner.steps,
      bytesByTransport: { ...this.#delivered },
      transportTrials: this.#trial?.steps ?? [],
    };
  }
}

const NAMES: Readonly<Record<TransportKind, string>> = { tcp: "TCP", quic: "QUIC" };

/** A failure of the connection, not of the request: another stream may well succeed. */
function isTransportFailure(error: TeleportError): boolean {
  return error.code === ErrorCode.CONNECTION || error.code === ErrorCode.TIMEOUT;
}
