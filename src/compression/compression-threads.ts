/**
 * The host's compression threads. A group of chunk frames is compressed in place by a thread,
 * in the pooled buffer it was read into (a SharedArrayBuffer: nothing is copied either way),
 * while the main thread goes on serving. Jobs go to the thread with the fewest open.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { ErrorCode, TeleportError } from "../errors.js";
import type { FramesCompressed } from "./frames.js";

export interface CompressJob {
  id: number;
  buffer: SharedArrayBuffer;
  byteOffset: number;
  length: number;
  level: number;
  /** 1 for each frame to send as it is. */
  store: Uint8Array;
}

export type CompressReply = { id: number; result: FramesCompressed } | { id: number; error: string };

/**
 * What a thread posts once it takes jobs: its modules loaded, zstd's binding among them. The
 * worker's "online" comes before that (as soon as it runs any JavaScript), so a job handed over
 * then waited tens of milliseconds for the load, hundreds under load.
 */
export const THREAD_READY = "ready";

const WORKER_URL = new URL("./compress-worker.js", import.meta.url);

/** What the threads have compressed since the host started. */
export interface CompressionStats {
  /** Chunks sent compressed, and their bytes before and after. */
  chunks: number;
  bytesIn: number;
  bytesOut: number;
  /** Bytes (before) of the chunks compressed at each level. */
  bytesInByLevel: Map<number, number>;
}

interface Thread {
  worker: Worker;
  open: number;
}

export class CompressionThreads {
  readonly #threads: Thread[] = [];
  readonly #count: number;
  readonly #jobs = new Map<
    number,
    {
      thread: Thread;
      level: number;
      resolve: (result: FramesCompressed) => void;
      reject: (error: Error) => void;
    }
  >();
  readonly stats: CompressionStats = { chunks: 0, bytesIn: 0, bytesOut: 0, bytesInByLevel: new Map() };
  #nextId = 1;
  #closed = false;
  /** Settles once every thread takes jobs (and at once before any is started). */
  #online: Promise<unknown> = Promise.resolve();

  /**
   * One thread per core beyond the main thread's, at least one; started at the first job, so
   * that a host no client asks to compress holds no idle threads.
   */
  constructor(count = Math.max(1, availableParallelism() - 1)) {
    this.#count = count;
  }

  #started(): Thread[] {
    if (this.#threads.length > 0) return this.#threads;
    const ready: Promise<void>[] = [];
    for (let i = 0; i < this.#count; i++) {
      const thread: Thread = { worker: new Worker(WORKER_URL), open: 0 };
      thread.worker.unref();
      // Ready once it says so, or once it exits (a failed thread fails its jobs).
      ready.push(
        new Promise((resolve) => {
          thread.worker.on("message", (message: CompressReply | typeof THREAD_READY) => {
            if (message === THREAD_READY) resolve();
            else this.#onReply(message);
          });
          thread.worker.once("exit", () => resolve());
        }),
      );
      thread.worker.on("error", (err) => this.#failAll(thread, err));
      thread.worker.on("exit", () => this.#failAll(thread, new Error("compression thread exited")));
      this.#threads.push(thread);
    }
    this.#online = Promise.all(ready);
    return this.#threads;
  }

  /**
   * Starts the threads if none runs yet, and settles once they run: what a caller timing the
   * compressor awaits first, so that starting a thread never counts as compressing.
   */
  async ready(): Promise<void> {
    this.#started();
    await this.#online;
  }

  /**
   * Compresses the CHUNK_DATA frames in `frames` (a view of a SharedArrayBuffer) in place; the
   * frames in use afterwards are `frames.subarray(0, result.length)`.
   */
  compress(frames: Buffer, level: number, store: Uint8Array): Promise<FramesCompressed> {
    if (this.#closed) return Promise.reject(new TeleportError(ErrorCode.CANCELLED, "host closing"));
    if (!(frames.buffer instanceof SharedArrayBuffer))
      throw new TypeError("compressed frames must live in shared memory");
    const thread = this.#started().reduce((best, candidate) =>
      candidate.open < best.open ? candidate : best,
    );
    const id = this.#nextId++;
    const job: CompressJob = {
      id,
      buffer: frames.buffer,
      byteOffset: frames.byteOffset,
      length: frames.length,
      level,
      store,
    };
    return new Promise((resolve, reject) => {
      this.#jobs.set(id, { thread, level, resolve, reject });
      thread.open++;
      if (thread.open === 1) thread.worker.ref(); // a job in progress keeps the process alive
      thread.worker.postMessage(job);
    });
  }

  #onReply(reply: CompressReply): void {
    const job = this.#jobs.get(reply.id);
    if (job === undefined) return;
    this.#jobs.delete(reply.id);
    this.#settled(job.thread);
    if ("error" in reply)
      job.reject(new TeleportError(ErrorCode.INTERNAL, `compression failed: ${reply.error}`));
    else {
      this.#tally(job.level, reply.result);
      job.resolve(reply.result);
    }
  }

  #tally(level: number, { compressedChunks, bytesIn, bytesOut }: FramesCompressed): void {
    if (compressedChunks === 0) return;
    const stats = this.stats;
    stats.chunks += compressedChunks;
    stats.bytesIn += bytesIn;
    stats.bytesOut += bytesOut;
    stats.bytesInByLevel.set(level, (stats.bytesInByLevel.get(level) ?? 0) + bytesIn);
  }

  #settled(thread: Thread): void {
    thread.open--;
    if (thread.open === 0) thread.worker.unref();
  }

  #failAll(thread: Thread, err: Error): void {
    for (const [id, job] of this.#jobs) {
      if (job.thread !== thread) continue;
      this.#jobs.delete(id);
      this.#settled(thread);
      job.reject(new TeleportError(ErrorCode.INTERNAL, `compression thread failed: ${err.message}`));
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#threads.map((thread) => thread.worker.terminate()));
  }
}
