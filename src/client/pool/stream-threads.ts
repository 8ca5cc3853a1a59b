/**
 * The worker threads a stream pool spreads its data streams over (stream-worker.ts runs in
 * each), so that decryption, verification and writes run on every core while the main thread
 * plans.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { ErrorCode, TeleportError } from "../../errors.js";
import { TRANSPORT_KINDS, type TransportCounts } from "../../transport/transport.js";
import type { DataStreamSpec } from "./data-streams.js";
import type { ReceiveLimitSpec } from "./receive-limit.js";
import {
  deliveredCounters,
  deliveredSlot,
  type FromThread,
  type StreamThreadData,
  type ToThread,
} from "./stream-protocol.js";

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

export class StreamThread {
  readonly worker: Worker;
  readonly exited: Promise<void>;
  readonly #delivered = deliveredCounters();
  readonly #lastDelivered: Int32Array = deliveredCounters();
  /** Streams the pool has placed on this thread and not yet seen lost. */
  streams = 0;
  report: Extract<FromThread, { op: "closed" }> | undefined;

  constructor(
    streams: DataStreamSpec,
    receiveLimit: ReceiveLimitSpec | undefined,
    onMessage: (message: FromThread) => void,
    onExit: (error: TeleportError) => void,
  ) {
    const data: StreamThreadData = { streams, delivered: this.#delivered, receiveLimit };
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
    this.worker.postMessage(message);
  }
}
