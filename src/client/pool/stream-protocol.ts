/**
 * What the stream pool (stream-pool.ts) and its stream runners (stream-runner.ts: in worker threads,
 * or in the main thread for QUIC) say to each other:
 * the thread's start data, the messages each way, and batches packed for posting.
 *
 * File descriptors: the pull opens and closes the files chunks are written to; a ChunkWrite
 * lends its `fd` to the threads. A batch that resolves has had every write finished, so the
 * caller may close its files then. One that rejects may have writes still under way on a
 * thread (the pool gave up on it), so after a failure the caller closes files only once
 * StreamPool.close() has resolved: every thread has then finished its writes and exited.
 * Sockets are the threads' own: each opens and closes its streams.
 */
import type { MessagePort } from "node:worker_threads";
import { ErrorCode, isErrorCode, TeleportError } from "../../errors.js";
import type { ChunkWrite } from "../../receive/chunk-write.js";
import { TRANSPORT_KINDS, type TransportKind } from "../../transport/transport.js";
import { HASH_SIZE } from "../../wire/messages.js";
import type { DataStreamSpec } from "./data-streams.js";
import type { ReceiveLimitSpec } from "./receive-limit.js";
import type { RoutedStreamsSpec } from "./routed-streams.js";

/** A chunk to fetch and where its bytes go: `fd`, lent to the pool's threads (see above). */
export type { ChunkWrite };

export interface StreamStats {
  /** Chunk bytes this stream fetched, verified and wrote. */
  bytes: number;
  /** What those chunks took on the wire (less where they came compressed). */
  wireBytes: number;
}

export interface StreamThreadData {
  /** How the thread's streams are opened. */
  streams: DataStreamSpec;
  /**
   * Bytes of verified chunks this thread has received, for the tuner: one counter per transport,
   * at deliveredSlot(kind) (each wraps at 2^32).
   */
  delivered: Int32Array;
  /** `pull --bwlimit`: the receive rate all the pool's streams share; unlimited when absent. */
  receiveLimit?: ReceiveLimitSpec | undefined;
  /**
   * Streams routed to the thread (an upload's): what it checks of each, and its channel to the
   * main thread, which hands it their sockets (routed-streams.ts).
   */
  routed?: { spec: RoutedStreamsSpec; port: MessagePort } | undefined;
}

/** A delivered-bytes counter array with a slot for each transport. */
export function deliveredCounters(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(TRANSPORT_KINDS.length * Int32Array.BYTES_PER_ELEMENT));
}

/** Where a transport's bytes are counted in StreamThreadData.delivered. */
export function deliveredSlot(kind: TransportKind): number {
  return TRANSPORT_KINDS.indexOf(kind);
}

export type ToThread =
  | { op: "open"; stream: number; transport: TransportKind }
  | { op: "fetch"; stream: number; id: number; batch: PackedBatch; compressLevel: number }
  /**
   * Closes one stream once its open batches are done (the tuner wants fewer), or at once with
   * `abort` (its transport lost a trial: its batches go back to the queue instead of waiting on it).
   */
  | { op: "drop"; stream: number; abort: boolean }
  | { op: "close"; abort: boolean };

export type FromThread =
  | { op: "ready"; stream: number }
  | { op: "done"; id: number }
  | { op: "failed"; id: number; error: SerializedError }
  /** The stream's connection failed or could not be made. */
  | { op: "lost"; stream: number; error: SerializedError }
  | { op: "closed"; streams: { stream: number; stats: StreamStats }[]; peakBufferBytes: number };

export interface SerializedError {
  code: string;
  message: string;
}

export function serializeError(error: TeleportError): SerializedError {
  return { code: error.code, message: error.detail }; // the code goes back in front on the other side
}

export function deserializeError({ code, message }: SerializedError): TeleportError {
  return new TeleportError(isErrorCode(code) ? code : ErrorCode.INTERNAL, message);
}

/**
 * A batch of chunk writes as a handful of typed arrays: structured cloning copies each Buffer
 * separately, so 32 chunk objects with their hashes cost far more to post than one array of
 * 32 hashes (the batch is rebuilt in the worker, hashes as views into one buffer).
 */
export interface PackedBatch {
  hashes: Uint8Array;
  offsets: Float64Array;
  /** Where each chunk goes in its fd (ChunkWrite.at, else its offset). */
  positions: Float64Array;
  sizes: Uint32Array;
  fds: Int32Array;
  /** Index into `paths` per chunk. */
  pathIndexes: Uint32Array;
  paths: string[];
}

export function packBatch(chunks: readonly ChunkWrite[]): PackedBatch {
  const count = chunks.length;
  const batch: PackedBatch = {
    hashes: new Uint8Array(count * HASH_SIZE),
    offsets: new Float64Array(count),
    positions: new Float64Array(count),
    sizes: new Uint32Array(count),
    fds: new Int32Array(count),
    pathIndexes: new Uint32Array(count),
    paths: [],
  };
  let lastPath: string | undefined;
  chunks.forEach((chunk, i) => {
    batch.hashes.set(chunk.hash, i * HASH_SIZE);
    batch.offsets[i] = chunk.offset;
    batch.positions[i] = chunk.at ?? chunk.offset;
    batch.sizes[i] = chunk.size;
    batch.fds[i] = chunk.fd;
    if (chunk.path !== lastPath) {
      batch.paths.push(chunk.path);
      lastPath = chunk.path;
    }
    batch.pathIndexes[i] = batch.paths.length - 1;
  });
  return batch;
}

export function unpackBatch(batch: PackedBatch): ChunkWrite[] {
  const hashes = Buffer.from(batch.hashes.buffer, batch.hashes.byteOffset, batch.hashes.byteLength);
  return Array.from(batch.sizes, (size, i) => {
    const offset = batch.offsets[i] as number;
    const position = batch.positions[i] as number;
    return {
      hash: hashes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE),
      size,
      offset,
      // Only a chunk placed elsewhere gets `at`: a pull's chunk (at its offset) stays a pull's,
      // which GatheredWrites never pads.
      ...(position === offset ? {} : { at: position }),
      fd: batch.fds[i] as number,
      path: batch.paths[batch.pathIndexes[i] as number] as string,
    };
  });
}
