/**
 * A worker thread of data streams: the stream runner (stream-runner.ts) on the worker's port.
 * It shuts its QUIC state down before it exits, although the pool no longer places QUIC streams
 * on workers (see stream-threads.ts): a worker's QUIC state must never outlive it.
 */
import { parentPort } from "node:worker_threads";
import type { StreamThreadData } from "./stream-protocol.js";
import { StreamRunner } from "./stream-runner.js";

if (parentPort === null) throw new Error("stream-worker runs as a worker thread");
const port = parentPort;
// The worker may boot before its pool exists (prestartStreamWorkers): what its streams are is
// the first message, and the pool's messages wait in the port until the runner listens.
port.once("message", (data: StreamThreadData) => {
  new StreamRunner(port, data, {
    shutdownQuic: true,
    onFault: (error) => {
      throw error; // the worker's "error": the pool breaks the pull with it
    },
  });
});
