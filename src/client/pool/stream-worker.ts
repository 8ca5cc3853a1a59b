/**
 * A worker thread of data streams: the stream runner (stream-runner.ts) on the worker's port.
 * It shuts its QUIC state down before it exits, although the pool no longer places QUIC streams
 * on workers (see stream-threads.ts): a worker's QUIC state must never outlive it.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { StreamThreadData } from "./stream-protocol.js";
import { StreamRunner } from "./stream-runner.js";

if (parentPort === null) throw new Error("stream-worker runs as a worker thread");
new StreamRunner(parentPort, workerData as StreamThreadData, {
  shutdownQuic: true,
  onFault: (error) => {
    throw error; // the worker's "error": the pool breaks the pull with it
  },
});
