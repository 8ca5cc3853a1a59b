/**
 * The threads a stream pool runs its data streams on. TCP streams run in worker threads
 * (stream-worker.ts runs in each), so that decryption, verification and writes run on every
 * core while the main thread plans. QUIC streams run in the main thread: the QUIC binding
 * settles its calls through threadsafe functions of the thread that made them, and Node 20 frees
 * a worker's when the worker exits with calls pending, corrupting the heap (nodejs/node#55706,
 * docs/decisions.md); its crypto runs on its own threads anyway.
 */
import { availableParallelism } from "node:os";
import { MessageChannel, Worker } from "node:worker_threads";
import { ErrorCode, TeleportError } from "../../errors.js";
import { TRANSPORT_KINDS, type TransportCounts, type TransportKind } from "../../transport/transport.js";
import type { DataStreamFactory } from "./data-streams.js";
import type { ReceiveLimitSpec } from "./receive-limit.js";
import { serveRoutedSockets } from "./routed-streams.js";
import {
  deliveredCounters,
  deliveredSlot,
  type FromThread,
  type StreamThreadData,
  type ToThread,
} from "./stream-protocol.js";
import { StreamRunner } from "./stream-runner.js";

/**
 * A thread allocates fast (a frame object and a TLS read buffer per 16 KiB record), and garbage
 * in a large young generation holds its ArrayBuffers until a scavenge: a small one keeps the
 * pull's memory down at the same speed (docs/decisions.md, "Stream threads' young generation").
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 2 };
const WORKER_URL = new URL("./stream-worker.js", import.meta.url);

/** Threads for data streams: one per core (up to 4), at least two so a stream never waits on another. */
export function defaultThreadCount(): number {
  return Math.max(2, Math.min(4, availableParallelism()));
}

/** Where a stream thread's runner runs: in a worker thread, or in the main thread. */
export type ThreadPlace = "worker" | "main";

/** How the pool reaches a runner, wherever it runs. */
interface RunnerLink {
  post(message: ToThread): void;
  /** Stops the runner at once, its streams with it. */
  terminate(): void;
  /** Resolves once the runner has ended. */
  readonly ended: Promise<void>;
}

/** What a thread tells the pool. */
interface ThreadEvents {
  onMessage(message: FromThread): void;
  /** The thread failed or ended: the first error is the one the pull breaks with. */
  onExit(error: TeleportError): void;
}

export class StreamThread {
  readonly place: ThreadPlace;
  readonly exited: Promise<void>;
  readonly #link: RunnerLink;
  readonly #delivered = deliveredCounters();
  readonly #lastDelivered: Int32Array = deliveredCounters();
  /** Aborted once the thread has ended: its routed sockets are no longer asked for. */
  readonly #stopped = new AbortController();
  /** Streams the pool has placed on this thread and not yet seen lost. */
  streams = 0;
  report: Extract<FromThread, { op: "closed" }> | undefined;

  constructor(
    place: ThreadPlace,
    streams: DataStreamFactory,
    receiveLimit: ReceiveLimitSpec | undefined,
    events: ThreadEvents,
  ) {
    this.place = place;
    const data: StreamThreadData = { streams: streams.spec, delivered: this.#delivered, receiveLimit };
    const { routed } = streams;
    if (place === "worker" && routed !== undefined) {
      const { port1, port2 } = new MessageChannel();
      serveRoutedSockets(port1, routed.sockets, this.#stopped.signal);
      data.routed = { spec: routed.spec, port: port2 };
    }
    const relay: ThreadEvents = {
      onMessage: (message) => {
        if (message.op === "closed") this.report = message;
        events.onMessage(message);
      },
      onExit: events.onExit,
    };
    this.#link = place === "worker" ? inWorker(data, relay) : inMainThread(data, relay, streams);
    this.exited = this.#link.ended.then(() => {
      this.#stopped.abort();
      events.onExit(new TeleportError(ErrorCode.CONNECTION, "data stream thread ended"));
    });
  }

  /** Adds the bytes received over each transport since the last call to `into` (the counters wrap at 2^32). */
  takeDelivered(into: TransportCounts): void {
    for (const kind of TRANSPORT_KINDS) {
      const slot = deliveredSlot(kind);
      const now = Atomics.load(this.#delivered, slot);
      into[kind] += (now - (this.#lastDelivered[slot] ?? 0)) >>> 0;
      this.#lastDelivered[slot] = now;
    }
  }

  post(message: ToThread): void {
    this.#link.post(message);
  }

  /** Stops the thread at once (a worker is terminated, a main-thread runner destroys its streams). */
  terminate(): void {
    this.#link.terminate();
  }
}

/** Workers booted ahead of a pool (prestartStreamWorkers), idle until one adopts them. */
const spareWorkers: Worker[] = [];

/**
 * Boots the stream workers a pool will want (as many as it starts: fewer for a pinned count
 * below defaultThreadCount) before the pool exists, so that their start, loading the module
 * graph, overlaps the control connection's handshakes and the manifest instead of delaying the
 * first chunk (docs/decisions.md). Idle, they do not keep the process alive.
 */
export function prestartStreamWorkers(pinnedStreams?: number): void {
  const count = Math.min(defaultThreadCount(), pinnedStreams ?? Number.POSITIVE_INFINITY);
  while (spareWorkers.length < count) {
    const worker = new Worker(WORKER_URL, { resourceLimits: WORKER_LIMITS });
    const forget = () => {
      const at = spareWorkers.indexOf(worker);
      if (at >= 0) spareWorkers.splice(at, 1);
    };
    worker.once("error", forget).once("exit", forget).unref();
    spareWorkers.push(worker);
  }
}

/** Stops the spares no pool took (a pull with nothing to fetch, or one that failed first). */
export function stopSpareStreamWorkers(): void {
  for (const worker of spareWorkers.splice(0)) void worker.terminate();
}

/** A booted spare if there is one (no longer spare), else a new worker. */
function adoptWorker(): Worker {
  const spare = spareWorkers.shift();
  spare?.ref();
  return spare ?? new Worker(WORKER_URL, { resourceLimits: WORKER_LIMITS });
}

function inWorker(data: StreamThreadData, events: ThreadEvents): RunnerLink {
  const worker = adoptWorker();
  worker.postMessage(data, data.routed === undefined ? [] : [data.routed.port]);
  worker.on("message", events.onMessage);
  worker.on("error", (err) =>
    events.onExit(new TeleportError(ErrorCode.INTERNAL, `data stream failed: ${err.message}`)),
  );
  return {
    post: (message) => worker.postMessage(message),
    terminate: () => void worker.terminate(),
    ended: new Promise((resolve) => worker.once("exit", () => resolve())),
  };
}

/**
 * A runner in this thread, over a MessageChannel: messages stay asynchronous and structured-cloned
 * as with a worker, and it has ended when its port closes.
 */
function inMainThread(data: StreamThreadData, events: ThreadEvents, factory: DataStreamFactory): RunnerLink {
  const { port1, port2 } = new MessageChannel();
  const ended = new Promise<void>((resolve) => port1.once("close", () => resolve()));
  const runner = new StreamRunner(port2, data, {
    shutdownQuic: false, // the CLI shuts the main thread's QUIC down at exit (cli/bin.ts)
    factory,
    onFault: (err) => {
      events.onExit(new TeleportError(ErrorCode.INTERNAL, `data stream failed: ${err.message}`));
      runner.terminate();
    },
  });
  port1.on("message", events.onMessage);
  return {
    post: (message) => port1.postMessage(message),
    terminate: () => {
      runner.terminate();
      port1.close();
    },
    ended,
  };
}

/**
 * The pool's threads, made when first needed: the worker threads at the first TCP stream, the
 * main-thread runner at the first QUIC stream (or the first of a factory whose streams all run
 * there), so a pull has only the threads its transports use.
 */
export class StreamThreads {
  readonly #factory: DataStreamFactory;
  readonly #receiveLimit: ReceiveLimitSpec | undefined;
  readonly #events: ThreadEvents;
  readonly #workerCount: number;
  #workers: StreamThread[] = [];
  #main: StreamThread | undefined;

  constructor(
    factory: DataStreamFactory,
    receiveLimit: ReceiveLimitSpec | undefined,
    workerCount: number,
    events: ThreadEvents,
  ) {
    this.#factory = factory;
    this.#receiveLimit = receiveLimit;
    this.#workerCount = workerCount;
    this.#events = events;
  }

  /**
   * The thread a new stream of `transport` goes on: the main thread for QUIC or a factory that
   * runs there (DataStreamFactory.inMainThread), else the worker with the fewest.
   */
  for(transport: TransportKind): StreamThread {
    if (transport === "quic" || this.#factory.inMainThread) {
      this.#main ??= this.#thread("main");
      return this.#main;
    }
    if (this.#workers.length === 0)
      this.#workers = Array.from({ length: this.#workerCount }, () => this.#thread("worker"));
    return this.#workers.reduce((a, b) => (b.streams < a.streams ? b : a));
  }

  /** Every thread made so far. */
  get all(): StreamThread[] {
    return this.#main === undefined ? [...this.#workers] : [...this.#workers, this.#main];
  }

  /** Threads made so far, by where they run. */
  counts(): Record<ThreadPlace, number> {
    return { worker: this.#workers.length, main: this.#main === undefined ? 0 : 1 };
  }

  #thread(place: ThreadPlace): StreamThread {
    return new StreamThread(place, this.#factory, this.#receiveLimit, this.#events);
  }
}
