/**
 * A worker thread that serves connections: the host's (host/host-threads.ts) and the pusher's
 * (push/pusher-threads.ts) start theirs the same way.
 */
import { Worker } from "node:worker_threads";

/**
 * A small young generation, as the client's stream threads have (client/pool/stream-threads.ts):
 * a thread's garbage is mostly TLS and frame objects holding ArrayBuffers until a scavenge
 * (docs/decisions.md, "Host threads' memory").
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 4 };

export interface ServingThread {
  worker: Worker;
  /** Resolves once the thread has exited, whatever ended it. */
  exited: Promise<void>;
}

/** Starts the worker at `url` with `workerData` (its descriptors, which it owns from here). */
export function startServingThread(url: URL, workerData: unknown): ServingThread {
  // Untracked descriptors: most a thread closes come from openat2 (the addon) or another thread,
  // and Node, tracking, builds a warning with its stack for each (a CPU-second per 80k files).
  const worker = new Worker(url, { workerData, resourceLimits: WORKER_LIMITS, trackUnmanagedFds: false });
  return { worker, exited: new Promise((resolve) => worker.once("exit", () => resolve())) };
}
