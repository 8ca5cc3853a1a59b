/**
 * The pack read thread (pack-read-thread.ts): reads a run of adjacent chunks with one pread and
 * checks each against its BLAKE3 hash, then sends the verdicts to the main thread, and the bytes
 * (moved, not copied) if it keeps them. The preads go through the thread pool, several runs at once: a
 * cold page cache is read at the disk's pace, not one run at a time.
 */
import { parentPort } from "node:worker_threads";
import { hashBytes } from "../chunking/hash.js";
import { HASH_SIZE } from "../wire/limits.js";
import { readIntoAsync } from "./chunk-files.js";
import type { RunJob, RunReply } from "./pack-read-thread.js";

if (parentPort === null) throw new Error("pack-read-worker runs as a worker thread");
const port = parentPort;

port.on("message", (job: RunJob) => {
  // Its own memory (not a pool's slice): the whole ArrayBuffer moves to the main thread.
  const run = Buffer.allocUnsafeSlow(job.length);
  readIntoAsync(job.fd, run, job.position, (whole) => {
    const verified = new Uint8Array(job.sizes.length);
    if (whole)
      for (let i = 0; i < job.sizes.length; i++) {
        const offset = job.offsets[i] ?? 0;
        const chunk = run.subarray(offset, offset + (job.sizes[i] ?? 0));
        const hash = job.hashes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE);
        verified[i] = hashBytes(chunk).equals(hash) ? 1 : 0;
      }
    if (!job.keep) port.postMessage({ id: job.id, run: undefined, verified } satisfies RunReply);
    else port.postMessage({ id: job.id, run: run.buffer, verified } satisfies RunReply, [run.buffer]);
  });
});
