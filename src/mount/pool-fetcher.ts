/**
 * A mount's read-ahead fetched through the stream pool: several data connections, their count
 * and the bytes in flight tuned to the path as a pull's are (client/pool/stream-tuner.ts), each
 * chunk verified against its hash by the stream that receives it. The pool starts with the first
 * batch asked of it (a mount that is only browsed never starts one) and closes with the mount.
 *
 * The pool writes chunks into file descriptors it is lent, and a mount keeps them in its chunk
 * store: each batch is given a region of the store's pack (ChunkStore.reserveBatch, pack-batch.ts),
 * so its chunks are written once, where the cache keeps them, and handed over from one read of the
 * region. Where the store cannot take a batch (a --cache-size smaller than it), the batch lends a
 * scratch file instead, unlinked as soon as it is made and sparse, its chunks read back once the
 * batch is done. A batch that failed may still be written by a stream thread until its pool has
 * closed (stream-protocol.ts), so its pack region or scratch file is let go only then: a
 * descriptor number is never reused under a write, and a range is never punched under one.
 */
import { closeSync, existsSync, openSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TeleportClient } from "../client/client.js";
import { CompressionPolicy } from "../client/pool/compression-policy.js";
import { type ChunkWrite, DEFAULT_WINDOW_BYTES, StreamPool } from "../client/pool/stream-pool.js";
import { ErrorCode, TeleportError } from "../errors.js";
import type { ChunkRef } from "../wire/messages.js";
import type { ChunkFetcher } from "./chunk-fetcher.js";
import { readWhole } from "./chunk-files.js";
import type { MountHost } from "./mount-host.js";
import type { PackBatch } from "./pack-batch.js";
import type { Chunk } from "./stored-chunk.js";
import { untilAborted } from "./until-aborted.js";

/** Memory-backed where the machine has it: scratch bytes live for one batch only. */
const SCRATCH_FOLDER = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();

/**
 * Fetches larger than this go through the pool (read-ahead batches); a read waiting on a chunk or
 * two, and a folder's small files, take the control connection (chunk-fetcher.ts routedFetcher).
 */
export const POOL_FETCH_BYTES = 512 << 10;

/**
 * The least the pool keeps in flight (a pull's floor is DEFAULT_WINDOW_BYTES). The mount's main
 * thread also answers the kernel's reads, so it is late to hand a stream its next batch: with
 * four times a pull's floor, each stream has batches queued while it waits, and batches are the
 * largest the pool makes, halving the per-batch work (rows reserved and committed, posts to the
 * stream threads). Read-ahead grows to twice this (remote-files.ts).
 */
export const MOUNT_WINDOW_BYTES = 4 * DEFAULT_WINDOW_BYTES;

/** Where a batch's chunks can be written: a region of the store's pack. */
export interface BatchRegions {
  reserveBatch(refs: readonly ChunkRef[]): PackBatch | undefined;
}

/** A pool, and what its failed batches were lent: let go once it has closed. */
interface RunningPool {
  readonly client: TeleportClient;
  readonly pool: StreamPool;
  readonly afterClose: Array<() => void>;
  closed: Promise<void> | undefined;
  stopped: boolean;
}

export class PoolFetcher {
  readonly #host: MountHost;
  readonly #regions: BatchRegions | undefined;
  #running: RunningPool | undefined;
  #closed = false;
  #nextScratch = 0;

  constructor(host: MountHost, regions?: BatchRegions) {
    this.#host = host;
    this.#regions = regions;
  }

  /** Bytes the pool's tuner keeps in flight: the bandwidth-delay product of the path, measured. */
  get windowBytes(): number {
    return this.#running?.pool.windowBytes ?? DEFAULT_WINDOW_BYTES;
  }

  /** Whether a pool has been started (and not closed since). */
  get started(): boolean {
    return this.#running !== undefined;
  }

  readonly fetch: ChunkFetcher = async (path, refs, onChunk, signal) => {
    const running = await this.#start(signal);
    const batches = splitBatches(refs, running.pool.batchBytes);
    // A fetch given up on (its signal) lets its batches finish: their chunks still go to onChunk.
    await untilAborted(
      Promise.all(batches.map((batch) => this.#fetchBatch(running, path, batch, onChunk))),
      signal,
    );
  };

  /** Closes the pool (requests still open are cancelled); idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#running !== undefined) await this.#stop(this.#running);
  }

  async #fetchBatch(
    running: RunningPool,
    path: string,
    refs: readonly ChunkRef[],
    onChunk: (ref: ChunkRef, chunk: Chunk) => void,
  ): Promise<void> {
    const batch = this.#regions?.reserveBatch(refs);
    if (batch === undefined) return this.#fetchThroughScratch(running, path, refs, onChunk);
    const writes: ChunkWrite[] = refs.map((ref, i) => ({
      hash: ref.hash,
      size: ref.size,
      path,
      offset: ref.offset,
      fd: batch.fd,
      at: batch.positions[i] ?? -1,
    }));
    await this.#lend(running, writes, () => batch.abandon());
    const chunks = await batch.commit();
    if (chunks === undefined)
      throw new TeleportError(ErrorCode.IO, `fetched chunks of "${path}" were not written`);
    for (const [i, ref] of refs.entries()) {
      const chunk = chunks[i];
      if (chunk !== undefined) onChunk(ref, chunk);
    }
  }

  /** A batch through a scratch file: the store cannot take it. */
  async #fetchThroughScratch(
    running: RunningPool,
    path: string,
    refs: readonly ChunkRef[],
    onChunk: (ref: ChunkRef, chunk: Chunk) => void,
  ): Promise<void> {
    const fd = this.#scratchFile();
    const writes: ChunkWrite[] = refs.map((ref) => ({
      hash: ref.hash,
      size: ref.size,
      path,
      offset: ref.offset,
      fd,
    }));
    await this.#lend(running, writes, () => closeSync(fd));
    try {
      for (const run of contiguousRuns(refs)) {
        const first = run[0];
        const last = run.at(-1);
        if (first === undefined || last === undefined) continue;
        // One read and one buffer per run of chunks back to back; each chunk a view of it.
        const bytes = readRange(fd, first.offset, last.offset + last.size - first.offset);
        for (const ref of run)
          onChunk(ref, bytes.subarray(ref.offset - first.offset, ref.offset - first.offset + ref.size));
      }
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Fetches `writes` through the pool. If that fails, what they were lent is let go (`letGo`) once
   * the pool has closed, and the pool is stopped: the next fetch starts another.
   */
  async #lend(running: RunningPool, writes: ChunkWrite[], letGo: () => void): Promise<void> {
    try {
      await running.pool.fetch(writes);
    } catch (err) {
      if (running.stopped) letGo();
      else running.afterClose.push(letGo);
      void this.#stop(running);
      throw err;
    }
  }

  /** The running pool for the host's current client, started on first use. */
  async #start(signal: AbortSignal): Promise<RunningPool> {
    const client = await this.#host.client(signal);
    if (this.#closed) throw new TeleportError(ErrorCode.CANCELLED, "the mount is closing");
    const running = this.#running;
    if (running !== undefined && running.client === client && !running.stopped) return running;
    if (running !== undefined) void this.#stop(running);
    // No first round trip given: a pull's 16 streams for a long path did less here than the
    // tuner growing from one per thread (docs/decisions.md, "Mount: read-ahead").
    const pool = new StreamPool(client.dataStreams({ encrypted: true }), {
      windowBytes: MOUNT_WINDOW_BYTES,
      ping: () => client.ping(),
      compression: new CompressionPolicy("auto"),
    });
    const started: RunningPool = { client, pool, afterClose: [], closed: undefined, stopped: false };
    this.#running = started;
    return started;
  }

  #stop(running: RunningPool): Promise<void> {
    if (this.#running === running) this.#running = undefined;
    running.closed ??= running.pool
      .close({ abort: true })
      .catch(() => undefined)
      .then(() => {
        running.stopped = true;
        for (const letGo of running.afterClose.splice(0)) letGo();
      });
    return running.closed;
  }

  #scratchFile(): number {
    const path = join(SCRATCH_FOLDER, `teleport-mount-${process.pid}-${this.#nextScratch++}`);
    const fd = openSync(path, "wx+", 0o600);
    unlinkSync(path);
    return fd;
  }
}

/** `refs` in batches of about `batchBytes` each (at least one chunk). */
function splitBatches(refs: readonly ChunkRef[], batchBytes: number): ChunkRef[][] {
  const batches: ChunkRef[][] = [];
  let batch: ChunkRef[] = [];
  let bytes = 0;
  for (const ref of refs) {
    if (batch.length > 0 && bytes + ref.size > batchBytes) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(ref);
    bytes += ref.size;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/** `refs` cut where one chunk does not start where the one before ended. */
function contiguousRuns(refs: readonly ChunkRef[]): ChunkRef[][] {
  const runs: ChunkRef[][] = [];
  let run: ChunkRef[] = [];
  for (const ref of refs) {
    const last = run.at(-1);
    if (last !== undefined && last.offset + last.size !== ref.offset) {
      runs.push(run);
      run = [];
    }
    run.push(ref);
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/** Verified chunk bytes, back from the scratch file the pool wrote them into. */
function readRange(fd: number, offset: number, length: number): Buffer {
  const bytes = readWhole(fd, offset, length);
  if (bytes === undefined)
    throw new TeleportError(ErrorCode.IO, `fetched chunks at ${offset} were not written`);
  return bytes;
}
