/**
 * A thread of data streams: it runs the streams the pool places on it, each fetching the chunk
 * batches the main thread sends (every chunk checked against its hash on arrival, see
 * HostConnection.fetchChunks) and writing them into the files the batch lends (chunk-writer.ts).
 * A batch is reported done only once all its bytes are written. See stream-pool.ts for the pool's side.
 */
import { parentPort, workerData } from "node:worker_threads";
import { BufferPool } from "../../engine/buffer-pool.js";
import { ErrorCode, TeleportError, toTeleportError } from "../../errors.js";
import { shutdownQuic } from "../../transport/quic.js";
import type { TransportKind } from "../../transport/transport.js";
import type { HostConnection } from "../host-connection.js";
import { GatheredWrites } from "./chunk-writer.js";
import { DataStreamFactory } from "./data-streams.js";
import { ReceiveLimit } from "./receive-limit.js";
import {
  type ChunkWrite,
  deliveredSlot,
  type FromThread,
  type StreamStats,
  type StreamThreadData,
  serializeError,
  type ToThread,
  unpackBatch,
} from "./stream-protocol.js";

if (parentPort === null) throw new Error("stream-worker runs as a worker thread");
const port = parentPort;
let portClosed = false;
const post = (message: FromThread) => {
  if (!portClosed) port.postMessage(message);
};

const data = workerData as StreamThreadData;
const factory = DataStreamFactory.revive(data.streams);
const { delivered } = data;
const receiveLimit = data.receiveLimit && new ReceiveLimit(data.receiveLimit);
/** Shared by this thread's streams: its peak is the thread's chunk memory. */
const pool = new BufferPool();
const streams = new Map<number, Stream>();

/** One data stream and the batches it is fetching. */
class Stream {
  readonly id: number;
  readonly transport: TransportKind;
  /** Where this stream's bytes are counted in `delivered`. */
  readonly #counter: number;
  connection: HostConnection | undefined;
  /** Closing while still connecting cancels the connect. */
  readonly connecting = new AbortController();
  readonly gathered = new GatheredWrites(pool);
  openBatches = 0;
  /** Bytes of chunk frames received (compressed ones as sent). */
  wireBytes = 0;
  dropping = false;
  closed: Promise<void> | undefined;
  #lostPosted = false;

  constructor(id: number, transport: TransportKind) {
    this.id = id;
    this.transport = transport;
    this.#counter = deliveredSlot(transport);
  }

  async connect(): Promise<void> {
    try {
      this.connection = await factory.open(this.transport, {
        pool,
        signal: this.connecting.signal,
        onClose: (error) => this.#lost(error),
      });
      receiveLimit?.throttle(this.connection.stream.stream);
      post({ op: "ready", stream: this.id });
    } catch (err) {
      this.#lost(toTeleportError(err));
    }
  }

  /**
   * Tells the pool the stream is gone, once, whether it failed or was closed: a stream the pool
   * dropped is only forgotten when it says so (docs/decisions.md).
   */
  #lost(error: TeleportError): void {
    if (this.#lostPosted) return;
    this.#lostPosted = true;
    post({ op: "lost", stream: this.id, error: serializeError(error) });
  }

  async fetch(id: number, chunks: ChunkWrite[], compressLevel: number): Promise<void> {
    this.openBatches++;
    try {
      if (this.connection === undefined)
        throw new TeleportError(ErrorCode.CONNECTION, "not connected to the host");
      await this.connection.fetchChunks(
        chunks,
        (request, data, wireBytes) => {
          this.gathered.add(request, data);
          this.wireBytes += wireBytes;
          Atomics.add(delivered, this.#counter, data.length);
        },
        { compressLevel },
      );
      this.gathered.flush(); // the batch is done only once its bytes are written
      if (this.gathered.error !== undefined) throw this.gathered.error;
      post({ op: "done", id });
    } catch (err) {
      // What is gathered may be another open batch's: verified bytes, written, never dropped.
      try {
        this.gathered.flush();
      } catch {
        // kept in gathered.error: the other batches fail too
      }
      post({ op: "failed", id, error: serializeError(toTeleportError(err)) });
    } finally {
      this.openBatches--;
      if (this.dropping && this.openBatches === 0) void this.close(false);
    }
  }

  /** Ends the connection: gracefully once its batches are done, or at once with `abort`. */
  close(abort: boolean): Promise<void> {
    this.closed ??= (async () => {
      this.connecting.abort();
      this.gathered.discard();
      if (abort) this.connection?.destroy();
      else await this.connection?.close().catch(() => {});
    })();
    return this.closed;
  }

  stats(): StreamStats {
    return { bytes: this.gathered.written, wireBytes: this.wireBytes };
  }
}

port.on("message", (message: ToThread) => {
  switch (message.op) {
    case "open": {
      const stream = new Stream(message.stream, message.transport);
      streams.set(stream.id, stream);
      void stream.connect();
      break;
    }
    case "fetch": {
      const stream = streams.get(message.stream);
      if (stream === undefined) throw new Error(`no stream ${message.stream} on this thread`);
      void stream.fetch(message.id, unpackBatch(message.batch), message.compressLevel);
      break;
    }
    case "drop": {
      const stream = streams.get(message.stream);
      if (stream === undefined) break;
      stream.dropping = true;
      if (message.abort || stream.openBatches === 0) void stream.close(message.abort);
      break;
    }
    case "close":
      void closeAll(message.abort);
      break;
  }
});

async function closeAll(abort: boolean): Promise<void> {
  await Promise.all([...streams.values()].map((stream) => stream.close(abort)));
  post({
    op: "closed",
    streams: [...streams.values()].map((stream) => ({ stream: stream.id, stats: stream.stats() })),
    peakBufferBytes: pool.peakInUseBytes,
  });
  await shutdownQuic();
  portClosed = true;
  port.close();
}
