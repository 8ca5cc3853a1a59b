/**
 * The stream pool: the connections that carry a pull's chunks, TCP ones spread over a few worker
 * threads and QUIC ones in the main thread (stream-threads.ts), fed from one queue of batches
 * (batch-queue.ts).
 *
 * - A stream that dies (its connection cut, its host gone away) hands its open batches back to
 *   the queue, where the other streams take them, and is replaced. Chunks it had already
 *   written are written again, with the same verified bytes. The pull fails only when no stream
 *   can connect.
 * - The number of streams and the bytes in flight are tuned to the path (stream-tuner.ts) unless
 *   pinned with `--streams N`; under `--transport auto` the streams may move to the transport
 *   that delivers more (transport-trial.ts).
 * - Memory stays bounded: a stream holds at most a write slice and the frame it is reading, and
 *   each thread counts the chunk memory it holds at its peak (`memoryBoundBytes` is the bound).
 * - Files: the caller lends each batch's file descriptors to the threads until the batch
 *   resolves, or after a failure until close() resolves (stream-protocol.ts); the streams'
 *   sockets are their threads' own.
 */
import { HEADROOM as POOL_HEADROOM_BYTES } from "../../engine/buffer-pool.js";
import { ErrorCode, TeleportError } from "../../errors.js";
import type { ShareLink } from "../../transport/link.js";
import { transportFor } from "../../transport/registry.js";
import {
  type PathKind,
  type TransportCounts,
  type TransportKind,
  transportCounts,
} from "../../transport/transport.js";
import { BatchQueue } from "./batch-queue.js";
import { WRITE_SLICE_BYTES } from "./chunk-writer.js";
import { CompressionPolicy, isLoopbackHost } from "./compression-policy.js";
import { type DataStreamFactory, streamTransport } from "./data-streams.js";
import { type PoolStream, PoolStreams } from "./pool-streams.js";
import { bytesByPath } from "./punched-path.js";
import { receiveLimitSpec } from "./receive-limit.js";
import {
  type ChunkWrite,
  deserializeError,
  type FromThread,
  packBatch,
  type StreamStats,
} from "./stream-protocol.js";
import { defaultThreadCount, StreamThreads, type ThreadPlace } from "./stream-threads.js";
import { MAX_STREAMS, MIN_PROBE_RTT_MS, StreamTuner, type TuningStep } from "./stream-tuner.js";
import { TransportTrial, type TrialAction, type TrialStep } from "./transport-trial.js";

export type { ChunkWrite, StreamStats } from "./stream-protocol.js";
export { MAX_STREAMS } from "./stream-tuner.js";

/** How the pool runs: what the pull knows of the path, and what the user pinned. */
export interface PoolOptions {
  /** `--streams N`: this many streams throughout; tuned to the path when unset. */
  streams?: number;
  /** Bytes in flight to start with, and the least the tuner will use. */
  windowBytes?: number;
  /** Measures a round trip to the host (a ping on the control connection), for the tuner. */
  ping?: () => Promise<number>;
  /** A round trip measured before the pool starts, in milliseconds: it picks the first count. */
  rttMs?: number;
  /** What to ask the host to compress (default: nothing). */
  compression?: CompressionPolicy;
  /** `--bwlimit`: chunk bytes per second all the streams together may receive (unlimited when unset). */
  bytesPerSecond?: number;
  /** Told when the streams move to the other transport, and why. */
  onNotice?: (message: string) => void;
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
  /** The stream threads the pull ran, by where: worker threads (TCP), the main thread (QUIC). */
  threads: Record<ThreadPlace, number>;
  /** The transport trials (under `auto`): when, what each delivered per stream, what was kept. */
  transportTrials: TrialStep[];
  /** Chunk bytes by the way they came: bytesByTransport with a punched path's QUIC bytes apart. */
  bytesByPath: Record<PathKind, number>;
}

/** Streams a tuned pull starts with on a short path: one per thread, as more cost CPU and no time (docs/decisions.md). */
const STREAMS_PER_THREAD = 1;
/**
 * Streams a tuned pull starts with on a path long enough to probe (see stream-tuner.ts): TCP
 * ramps up one round trip at a time, so on a long path more streams ramp up sooner, and they
 * save the tuner a step when the path needs many.
 */
const LONG_PATH_STREAMS = 16;
/**
 * The most streams a tuned pull opens: on a lossy long path each reno stream carries a few
 * Mbit/s, and it takes about this many to fill 1 Gbit/s (docs/decisions.md).
 */
const MAX_TUNED_STREAMS = 128;
/**
 * Bytes in flight to start with; the tuner doubles them while the rate is window-bound. Not
 * more: what a stream is handed, it alone carries, and a larger first window held work the
 * streams opened later could not take (docs/decisions.md).
 */
export const DEFAULT_WINDOW_BYTES = 4 * 1024 * 1024;
/** A 10 Gbit/s path with 100 ms RTT holds 125 MB. */
const MAX_WINDOW_BYTES = 256 * 1024 * 1024;
/** Batches are sized so that each stream has two in flight: one arriving while the next is asked for. */
const BATCHES_PER_STREAM = 2;
const MIN_BATCH_BYTES = 128 * 1024;
const MAX_BATCH_BYTES = 2 * 1024 * 1024;
/** Replacement connections a pull may open beyond its streams, before a lost stream stays lost. */
const SPARE_CONNECTIONS = 8;
const TICK_MS = 50;
const PING_EVERY_MS = 250;
const CLOSE_TIMEOUT_MS = 5000;

/**
 * Chunk memory one stream can hold, given the largest chunk it is asked for: a write slice
 * gathered (see chunk-writer.ts) and the frame arriving, each in pooled buffers of up to twice
 * their size plus headroom (pool classes are powers of two).
 */
function streamMemoryBound(largestChunk: number): number {
  return 2 * (WRITE_SLICE_BYTES + largestChunk) + 2 * POOL_HEADROOM_BYTES;
}

export class StreamPool {
  readonly #compression: CompressionPolicy;
  readonly #loopback: boolean;
  readonly #threads: StreamThreads;
  readonly #streams: PoolStreams;
  readonly #batches = new BatchQueue<PoolStream>();
  readonly #tuner: StreamTuner;
  readonly #trial: TransportTrial | undefined;
  /** The transport new streams are opened on. */
  #transport: TransportKind;
  readonly #ping: (() => Promise<number>) | undefined;
  readonly #onNotice: ((message: string) => void) | undefined;
  readonly #ticker: NodeJS.Timeout;
  readonly #delivered: TransportCounts = transportCounts();
  readonly #factory: DataStreamFactory;
  /** QUIC bytes delivered before the streams moved to a punched path; unset until they do. */
  #quicBytesBeforePunch: number | undefined;
  #pinging = false;
  #lastPingAt = 0;
  #spares = SPARE_CONNECTIONS;
  #streamsLost = 0;
  #closing: Promise<PoolReport> | undefined;

  /** Data streams made by `streams` (to one host, as one client), run as `options` says. */
  constructor(streams: DataStreamFactory, options: PoolOptions = {}) {
    const pinned = options.streams;
    if (pinned !== undefined && (!Number.isInteger(pinned) || pinned < 1 || pinned > MAX_STREAMS))
      throw new RangeError(`stream count must be 1 to ${MAX_STREAMS}, got ${pinned}`);
    const { spec } = streams;
    this.#factory = streams;
    this.#compression = options.compression ?? new CompressionPolicy("off");
    this.#loopback = isLoopbackHost(spec.link.host);
    this.#ping = options.ping;
    this.#onNotice = options.onNotice;
    const threadCount = Math.min(defaultThreadCount(), pinned ?? Number.POSITIVE_INFINITY);
    const initial = this.#initialStreams(options, threadCount);
    this.#tuner = newTuner(options, initial, threadCount * STREAMS_PER_THREAD);
    this.#transport = streamTransport(spec);
    if (spec.alternative !== undefined && spec.alternative !== this.#transport)
      this.#trial = new TransportTrial(this.#transport, spec.alternative, performance.now());
    const receiveLimit =
      options.bytesPerSecond === undefined ? undefined : receiveLimitSpec(options.bytesPerSecond);
    this.#threads = new StreamThreads(streams, receiveLimit, threadCount, {
      onMessage: (message) => this.#onMessage(message),
      onExit: (error) => this.#onThreadExit(error),
    });
    this.#streams = new PoolStreams(this.#threads);
    for (let i = 0; i < initial; i++) this.#streams.open(this.#transport);
    this.#ticker = setInterval(() => this.#tick(), TICK_MS);
  }

  /** Streams to start with: as pinned, or by the path's length. */
  #initialStreams(options: PoolOptions, threadCount: number): number {
    const longPath = options.rttMs !== undefined && options.rttMs >= MIN_PROBE_RTT_MS;
    return options.streams ?? (longPath ? LONG_PATH_STREAMS : threadCount * STREAMS_PER_THREAD);
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
    const written = this.#batches.add(chunks);
    this.#dispatch();
    return written;
  }

  /** Hands queued batches to streams with room, the least loaded first. */
  #dispatch(): void {
    const perStream = Math.max(
      this.#tuner.windowBytes / this.#tuner.streams,
      BATCHES_PER_STREAM * this.batchBytes,
    );
    this.#batches.dispatch(this.#streams.byId, perStream, (stream, batch) =>
      stream.thread.post({
        op: "fetch",
        stream: stream.id,
        id: batch.id,
        batch: packBatch(batch.chunks),
        compressLevel: this.#compression.level({ minRttMs: this.#tuner.minRttMs, loopback: this.#loopback }),
      }),
    );
  }

  #onMessage(message: FromThread): void {
    switch (message.op) {
      case "ready": {
        const stream = this.#streams.byId.get(message.stream);
        if (stream?.state === "connecting") stream.state = "ready";
        this.#dispatch();
        break;
      }
      case "done":
        this.#batches.done(message.id);
        this.#dispatch();
        break;
      case "failed":
        if (this.#batches.failed(message.id, deserializeError(message.error), this.#closing === undefined))
          this.#dispatch();
        break;
      case "lost":
        this.#onLost(message.stream, deserializeError(message.error));
        break;
      case "closed":
        break;
    }
  }

  #onLost(id: number, error: TeleportError): void {
    const stream = this.#streams.lost(id);
    if (stream === undefined || this.#closing !== undefined || stream.wasDropping) return;
    if (stream.transport !== this.#transport) {
      // A trial's stream: the trial ends (its open batches come back as "failed" and are requeued).
      this.#act(this.#trial?.lost(performance.now()));
      return;
    }
    this.#streamsLost++;
    // Its open batches come back as "failed" and are requeued; it is replaced while spares last.
    if (this.#spares > 0) {
      this.#spares--;
      this.#streams.open(this.#transport);
    } else if (!this.#streams.anyLive) {
      this.#batches.breakWith(error); // what is left is being dropped: nothing would ever take the queue
    }
  }

  #onThreadExit(error: TeleportError): void {
    if (this.#closing !== undefined) return;
    this.#batches.breakWith(error);
  }

  /** Opens or drops streams of the current transport to the tuner's count. */
  #resize(): void {
    const active = this.#streams.active(this.#transport).length;
    for (let i = active; i < this.#tuner.streams; i++) this.#streams.open(this.#transport);
    if (active > this.#tuner.streams) this.#streams.drop(active - this.#tuner.streams, this.#transport);
  }

  /**
   * Moves the data streams to a punched path (reach/client-punch.ts) without restarting the pull:
   * new streams are QUIC streams to `link`, the host's public address; the others (the relay's)
   * are retired once the batches they hold are done. False when there is nothing to move: the
   * pool is closing (the punch came after the pull's last chunk), or already moved.
   */
  moveToPunchedPath(link: ShareLink): boolean {
    if (this.#closing !== undefined || this.#quicBytesBeforePunch !== undefined) return false;
    for (const thread of this.#threads.all) thread.takeDelivered(this.#delivered);
    this.#quicBytesBeforePunch = this.#delivered.quic;
    this.#factory.usePunchedPath(link);
    const from = this.#transport;
    this.#transport = "quic";
    this.#resize();
    if (from !== "quic") this.#streams.drop(Number.POSITIVE_INFINITY, from);
    this.#dispatch();
    return true;
  }

  /** Carries out what the transport trial decided. */
  #act(action: TrialAction | undefined): void {
    if (action === undefined) return;
    switch (action.op) {
      case "try":
        for (let i = 0; i < action.streams; i++) this.#streams.open(action.transport);
        break;
      case "switch": {
        const from = this.#transport;
        const [to, was] = [transportFor(action.transport).name, transportFor(from).name];
        this.#onNotice?.(
          `${to} delivers ${action.gain.toFixed(1)}x ${was}'s rate per stream here; moving the data streams to ${to}`,
        );
        this.#transport = action.transport;
        this.#resize();
        // The slower transport's batches would hold the pull's tail: they move at once.
        this.#streams.drop(Number.POSITIVE_INFINITY, from, true);
        break;
      }
      case "end":
        this.#streams.drop(Number.POSITIVE_INFINITY, action.transport, true);
        break;
    }
    this.#dispatch();
  }

  #tick(): void {
    const now = performance.now();
    for (const thread of this.#threads.all) thread.takeDelivered(this.#delivered);
    this.#pingHost(now);
    // Measure only while there is work: a pull waiting on its manifest is not a slow path.
    if (this.#batches.open === 0) return;
    const saturated = this.#saturated();
    const delivered = Object.values(this.#delivered).reduce((sum, bytes) => sum + bytes, 0);
    if (this.#tuner.observe(now, delivered, saturated)) {
      this.#resize();
      this.#dispatch();
    }
    const minRttMs = this.#tuner.minRttMs ?? 0;
    this.#act(
      this.#trial?.observe({
        nowMs: now,
        delivered: this.#delivered,
        ready: this.#streams.readyCounts(),
        streams: this.#tuner.streams,
        steady: saturated && this.#tuner.settled && minRttMs >= MIN_PROBE_RTT_MS,
        minRttMs,
      }),
    );
  }

  /** A round trip for the tuner, every PING_EVERY_MS, one at a time. */
  #pingHost(now: number): void {
    if (this.#ping === undefined || this.#pinging || now - this.#lastPingAt < PING_EVERY_MS) return;
    this.#pinging = true;
    this.#lastPingAt = now;
    this.#ping()
      .then((ms) => this.#tuner.rtt(ms))
      .catch(() => {})
      .finally(() => {
        this.#pinging = false;
      });
  }

  /**
   * Whether the streams have the work they can take: batches waiting, or at least half the window
   * in flight. Otherwise the caller is short of work, and the rate measures that, not the path.
   */
  #saturated(): boolean {
    return this.#batches.waiting > 0 || this.#streams.inFlightBytes >= this.#tuner.windowBytes / 2;
  }

  /**
   * Closes every stream and waits for its thread to exit. With `abort`, requests still open are
   * cancelled; either way every write a thread started has finished when this resolves, so the
   * caller may then close the files it lent.
   */
  close(options: { abort?: boolean } = {}): Promise<PoolReport> {
    this.#closing ??= (async () => {
      clearInterval(this.#ticker);
      const threads = this.#threads.all;
      for (const thread of threads) thread.post({ op: "close", abort: options.abort === true });
      // A thread that does not exit in time is stopped: it has no write left by then (a graceful
      // close follows the last batch; an abort waits for the writes before it answers).
      const timer = setTimeout(() => {
        for (const thread of threads) thread.terminate();
      }, CLOSE_TIMEOUT_MS);
      await Promise.all(threads.map((thread) => thread.exited));
      clearTimeout(timer);
      // What was delivered since the last tick (the counters outlive their threads).
      for (const thread of threads) thread.takeDelivered(this.#delivered);
      this.#batches.breakWith(new TeleportError(ErrorCode.CANCELLED, "streams closed"));
      return this.#report();
    })();
    return this.#closing;
  }

  #report(): PoolReport {
    const stats = new Map<number, StreamStats>();
    let peakBufferBytes = 0;
    for (const thread of this.#threads.all) {
      for (const { stream, stats: s } of thread.report?.streams ?? []) stats.set(stream, s);
      peakBufferBytes += thread.report?.peakBufferBytes ?? 0;
    }
    return {
      streams: this.#streams.order.flatMap((id) => {
        const s = stats.get(id);
        return s !== undefined && s.bytes > 0 ? [s] : [];
      }),
      peakStreams: this.#streams.peak,
      streamsLost: this.#streamsLost,
      batchesReissued: this.#batches.reissued,
      peakBufferBytes,
      memoryBoundBytes: this.#streams.peak * streamMemoryBound(this.#batches.largestChunk),
      windowBytes: this.#tuner.windowBytes,
      minRttMs: this.#tuner.minRttMs ?? null,
      tuning: this.#tuner.steps,
      bytesByTransport: { ...this.#delivered },
      threads: this.#threads.counts(),
      transportTrials: this.#trial?.steps ?? [],
      bytesByPath: bytesByPath(this.#delivered, this.#quicBytesBeforePunch),
    };
  }
}

/** The tuner for a pool starting with `initial` streams. */
function newTuner(options: PoolOptions, initial: number, shortPathStreams: number): StreamTuner {
  const pinned = options.streams;
  const minWindow = options.windowBytes ?? DEFAULT_WINDOW_BYTES;
  const tuner = new StreamTuner(
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
  if (options.rttMs !== undefined) tuner.rtt(options.rttMs);
  return tuner;
}
