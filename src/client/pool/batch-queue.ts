/**
 * The pool's batches and how they are handed to streams. Batches wait in one queue; a stream
 * takes the next one whenever it has room (its share of the bytes in flight), the least loaded
 * first. A slow stream takes less, a fast one more: the work goes where it moves, without
 * per-stream queues to rebalance. A batch whose stream died goes back to the front of the queue,
 * where the other streams take it; it is given up only after MAX_ATTEMPTS streams failed it.
 */
import { ErrorCode, type TeleportError } from "../../errors.js";
import type { ChunkWrite } from "./stream-protocol.js";

/** Streams that fail a batch before it fails the pull. */
const MAX_ATTEMPTS = 3;

/** A stream as the queue sees it. */
export interface BatchCarrier {
  /** Whether it takes batches now (connected, and not being dropped). */
  readonly ready: boolean;
  /** Bytes of the batches open on it. */
  inFlightBytes: number;
  /** Dropped with its batches cut off: they go to other streams, not counted as failures. */
  readonly abandoned: boolean;
}

interface Batch<S> {
  id: number;
  chunks: ChunkWrite[];
  bytes: number;
  attempts: number;
  stream: S | undefined;
  resolve(): void;
  reject(error: TeleportError): void;
}

export class BatchQueue<S extends BatchCarrier> {
  /** Batches waiting or open on a stream, by id. */
  readonly #batches = new Map<number, Batch<S>>();
  readonly #queue: Batch<S>[] = [];
  #nextId = 1;
  #broken: TeleportError | undefined;
  /** The largest chunk asked for so far. */
  largestChunk = 0;
  /** Batches handed to another stream after theirs failed or was cut off. */
  reissued = 0;

  /** Batches waiting for a stream. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Batches waiting or open. */
  get open(): number {
    return this.#batches.size;
  }

  /** Queues a batch; the promise settles once a stream has written it, or it failed for good. */
  add(chunks: ChunkWrite[]): Promise<void> {
    if (this.#broken !== undefined) return Promise.reject(this.#broken);
    return new Promise<void>((resolve, reject) => {
      let bytes = 0;
      for (const chunk of chunks) {
        bytes += chunk.size;
        if (chunk.size > this.largestChunk) this.largestChunk = chunk.size;
      }
      const batch: Batch<S> = {
        id: this.#nextId++,
        chunks,
        bytes,
        attempts: 0,
        stream: undefined,
        resolve,
        reject,
      };
      this.#batches.set(batch.id, batch);
      this.#queue.push(batch);
    });
  }

  /**
   * Hands queued batches to ready streams with less than `perStream` bytes in flight, the least
   * loaded first; `send` posts each to its stream.
   */
  dispatch(
    streams: ReadonlyMap<unknown, S>,
    perStream: number,
    send: (stream: S, batch: { id: number; chunks: ChunkWrite[] }) => void,
  ): void {
    while (this.#queue.length > 0) {
      let best: S | undefined;
      for (const stream of streams.values()) {
        if (!stream.ready || stream.inFlightBytes >= perStream) continue;
        if (best === undefined || stream.inFlightBytes < best.inFlightBytes) best = stream;
      }
      const batch = best === undefined ? undefined : this.#queue.shift();
      if (best === undefined || batch === undefined) return;
      batch.stream = best;
      batch.attempts++;
      best.inFlightBytes += batch.bytes;
      send(best, batch);
    }
  }

  /** The batch `id` is written. */
  done(id: number): void {
    this.#settle(id)?.resolve();
  }

  /**
   * The batch `id` failed on its stream with `error`. A failure of the connection (or of a stream
   * cut off) puts it back at the front of the queue while attempts are left and `retry` allows;
   * any other fails it. Returns whether it was queued again.
   */
  failed(id: number, error: TeleportError, retry: boolean): boolean {
    const abandoned = this.#batches.get(id)?.stream?.abandoned === true;
    const batch = this.#settle(id);
    if (batch === undefined) return false;
    if (abandoned) batch.attempts--; // not this batch's failure: its stream was cut off
    if ((abandoned || isTransportFailure(error)) && batch.attempts < MAX_ATTEMPTS && retry) {
      this.reissued++;
      this.#batches.set(batch.id, batch);
      this.#queue.unshift(batch);
      return true;
    }
    batch.reject(error);
    return false;
  }

  /** Takes a batch off its stream; the caller resolves, rejects or requeues it. */
  #settle(id: number): Batch<S> | undefined {
    const batch = this.#batches.get(id);
    if (batch === undefined) return undefined;
    this.#batches.delete(id);
    if (batch.stream !== undefined) batch.stream.inFlightBytes -= batch.bytes;
    batch.stream = undefined;
    return batch;
  }

  /** No stream is left to carry anything: every batch waiting or open, and any added later, fails. */
  breakWith(error: TeleportError): void {
    this.#broken ??= error;
    for (const batch of this.#batches.values()) batch.reject(this.#broken);
    this.#batches.clear();
    this.#queue.length = 0;
  }
}

/** A failure of the connection, not of the request: another stream may well succeed. */
function isTransportFailure(error: TeleportError): boolean {
  return error.code === ErrorCode.CONNECTION || error.code === ErrorCode.TIMEOUT;
}
