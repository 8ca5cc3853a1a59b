/**
 * The pack read thread (pack-read-thread.ts): reads a run of adjacent chunks with one pread and
 * checks each against its BLAKE3 hash, then moves the bytes (transferred, not copied) and the
 * verdicts to the main thread. The preads go through the thread pool, several runs at once: a
 * cold page cache is read at the disk's pace, not one run at a time.
 */
import { read } from "node:fs";
import { parentPort } from "node:worker_threads";
import { hashBytes } from "../chunking/hash.js";
import { HASH_SIZE } from "../wire/limits.js";
import type { RunJob, RunReply } from "./pack-read-thread.js";

if (parentPort === null) throw new Error("pack-read-worker runs as a worker thread");
const port = parentPort;

port.on("message", (job: RunJob) => {
  // Its own memory (not a pool's slice): the whole ArrayBuffer moves to the main thread.
  const run = Buffer.allocUnsafeSlow(job.length);
  readWhole(job.fd, run, job.position, (whole) => {
    const verified = new Uint8Array(job.sizes.length);
    if (whole)
      for (let i = 0; i < job.sizes.length; i++) {
        const offset = job.offsets[i] ?? 0;
        const chunk = run.subarray(offset, offset + (job.sizes[i] ?? 0));
        const hash = job.hashes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE);
        verified[i] = hashBytes(chunk).equals(hash) ? 1 : 0;
      }
    const reply: RunReply = { id: job.id, run: run.buffer, verified };
    port.postMessage(reply, [run.buffer]);
  });
});

/** Fills `into` from `position` of `fd`; false at a short file or an error (all chunks then fail). */
function readWhole(fd: number, into: Buffer, position: number, done: (whole: boolean) => void): void {
  const readFrom = (filled: number): void => {
    if (filled === into.length) done(true);
    else
      read(fd, into, filled, into.length - filled, position + filled, (error, n) => {
        if (error === null && n > 0) readFrom(filled + n);
        else done(false);
      });
  };
  readFrom(0);
}
