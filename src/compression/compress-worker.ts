/**
 * A host compression thread: compresses groups of chunk frames in place, in buffers shared with
 * the main thread (see CompressionThreads), so the event loop never runs zstd.
 */
import { parentPort } from "node:worker_threads";
import { MAX_CHUNK_SIZE } from "../wire/messages.js";
import { type CompressJob, type CompressReply, THREAD_READY } from "./compression-threads.js";
import { compressFrames } from "./frames.js";
import { Compressor, compressBound } from "./zstd.js";

if (parentPort === null) throw new Error("compress-worker runs as a worker thread");
const port = parentPort;
const compressor = new Compressor();
const scratch = Buffer.allocUnsafe(compressBound(MAX_CHUNK_SIZE));

port.on("message", (job: CompressJob) => {
  let reply: CompressReply;
  try {
    const frames = Buffer.from(job.buffer, job.byteOffset, job.length);
    reply = {
      id: job.id,
      result: compressFrames(frames, job.length, job.level, job.store, compressor, scratch),
    };
  } catch (err) {
    reply = { id: job.id, error: (err as Error).message };
  }
  port.postMessage(reply);
});
port.postMessage(THREAD_READY);
