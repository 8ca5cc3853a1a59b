/**
 * A thread that reads runs of pack chunks and verifies them (pack-read-worker.ts): the pread and
 * the BLAKE3 of every chunk leave the main thread, which meanwhile answers the kernel. Runs go to
 * the thread in order; their bytes come back moved, not copied, when asked for (else only the
 * verdicts: the bytes are sent to the kernel from the pack). Started at the first run and
 * ended by close(); if the thread cannot start or dies, read() says so (undefined) and the caller
 * reads on the main thread instead.
 */
import { Worker } from "node:worker_threads";
import { HASH_SIZE } from "../wire/limits.js";

/** One run: `sizes[i]` bytes at `offsets[i]` of the run are a chunk whose hash is `hashes[i]`. */
export interface RunJob {
  id: number;
  fd: number;
  position: number;
  length: number;
  offsets: Float64Array;
  sizes: Float64Array;
  /** The chunks' hashes back to back (copied: a view would carry its whole backing buffer). */
  hashes: Uint8Array;
  /** Whether the run's bytes come back. */
  keep: boolean;
}

/**
 * The run's bytes (if kept), and 1 for each chunk that matched its hash (all 0 if the run was
 * unreadable).
 */
export interface RunReply {
  id: number;
  run: ArrayBuffer | undefined;
  verified: Uint8Array;
}

/** A chunk of a run: where it lies in the run, and its hash. */
export interface RunChunk {
  offset: number;
  size: number;
  hash: Buffer;
}

const WORKER_URL = new URL("./pack-read-worker.js", import.meta.url);

export class PackReadThread {
  #worker: Worker | undefined;
  #failed = false;
  readonly #runs = new Map<number, (reply: RunReply | undefined) => void>();
  #nextId = 1;

  /**
   * `length` bytes from `position` of the open pack `fd` (kept open until this settles), each of
   * `chunks` verified, the bytes handed back if `keep`; undefined when there is no thread to read them.
   */
  read(
    fd: number,
    position: number,
    length: number,
    chunks: readonly RunChunk[],
    keep: boolean,
  ): Promise<RunReply | undefined> {
    const worker = this.#started();
    if (worker === undefined) return Promise.resolve(undefined);
    const job: RunJob = {
      id: this.#nextId++,
      fd,
      position,
      length,
      offsets: Float64Array.from(chunks, (chunk) => chunk.offset),
      sizes: Float64Array.from(chunks, (chunk) => chunk.size),
      hashes: new Uint8Array(chunks.length * HASH_SIZE),
      keep,
    };
    for (const [i, chunk] of chunks.entries())
      job.hashes.set(chunk.hash.subarray(0, HASH_SIZE), i * HASH_SIZE);
    return new Promise((resolve) => {
      this.#runs.set(job.id, resolve);
      if (this.#runs.size === 1) worker.ref(); // a run being read keeps the process alive
      worker.postMessage(job);
    });
  }

  /** Ends the thread; runs still out settle undefined. */
  close(): void {
    this.#failed = true;
    void this.#worker?.terminate();
    this.#failAll();
  }

  #started(): Worker | undefined {
    if (this.#worker !== undefined || this.#failed) return this.#failed ? undefined : this.#worker;
    try {
      const worker = new Worker(WORKER_URL);
      worker.unref();
      worker.on("message", (reply: RunReply) => this.#settle(reply.id, reply));
      worker.on("error", () => this.#fail());
      worker.on("exit", () => this.#fail());
      this.#worker = worker;
      return worker;
    } catch {
      this.#failed = true;
      return undefined;
    }
  }

  #settle(id: number, reply: RunReply | undefined): void {
    const resolve = this.#runs.get(id);
    this.#runs.delete(id);
    if (this.#runs.size === 0) this.#worker?.unref();
    resolve?.(reply);
  }

  #fail(): void {
    this.#failed = true;
    this.#failAll();
  }

  #failAll(): void {
    for (const id of [...this.#runs.keys()]) this.#settle(id, undefined);
  }
}
