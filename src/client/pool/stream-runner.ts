/**
 * What runs the data streams of one stream thread: the streams the pool places on it, each
 * fetching the chunk batches the main thread sends (every chunk checked against its hash on
 * arrival, see HostConnection.fetchChunks) and writing them into the files the batch lends
 * (chunk-writer.ts). A batch is reported done only once all its bytes are written. It runs in a
 * worker thread (stream-worker.ts) or in the main thread (stream-threads.ts), talking to the pool
 * over a message port either way. See stream-pool.ts for the pool's side.
 */
import { BufferPool } from "../../engine/buffer-pool.js";
import { ErrorCode, TeleportError, toTeleportError } from "../../errors.js";
import { shutdownQuic } from "../../transport/quic.js";
import type { TransportKind } from "../../transport/transport.js";
import type { HostConnection } from "../host-connection.js";
import { GatheredWrites } from "./chunk-writer.js";
import { DataStreamFactory } from "./data-streams.js";
import { ReceiveLimit } from "./receive-limit.js";
import { PortRoutedSockets, RoutedStreamFactory } from "./routed-streams.js";
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

/** The runner's end of its channel to the pool: a worker's parentPort, or a MessagePort. */
export interface RunnerPort {
  postMessage(message: FromThread): void;
  on(event: "message", listener: (message: ToThread) => void): unknown;
  close(): void;
}

export interface RunnerOptions {
  /**
   * Whether closing shuts this thread's QUIC state down (shutdownQuic): a worker must before it
   * exits; the main thread must not, as its QUIC state (the control connection) is the CLI's to
   * shut down at exit.
   */
  shutdownQuic: boolean;
  /** Told of a message the runner cannot make sense of (a bug): the thread is then broken. */
  onFault: (error: Error) => void;
  /** What opens the streams, in the main thread: revived from the thread's data when unset. */
  factory?: DataStreamFactory | undefined;
}

/** What a stream needs of the runner it belongs to. */
interface StreamContext {
  readonly factory: DataStreamFactory;
  /** Shared by the runner's streams: its peak is the runner's chunk memory. */
  readonly pool: BufferPool;
  readonly delivered: Int32Array;
  readonly receiveLimit: ReceiveLimit | undefined;
  post(message: FromThread): void;
}

export class StreamRunner implements StreamContext {
  readonly factory: DataStreamFactory;
  readonly pool = new BufferPool();
  readonly delivered: Int32Array;
  readonly receiveLimit: ReceiveLimit | undefined;
  readonly #port: RunnerPort;
  readonly #options: RunnerOptions;
  readonly #streams = new Map<number, Stream>();
  #portClosed = false;

  constructor(port: RunnerPort, data: StreamThreadData, options: RunnerOptions) {
    this.#port = port;
    this.#options = options;
    this.factory = options.factory ?? revivedFactory(data);
    this.delivered = data.delivered;
    this.receiveLimit = data.receiveLimit && new ReceiveLimit(data.receiveLimit);
    port.on("message", (message) => {
      try {
        this.#onMessage(message);
      } catch (err) {
        options.onFault(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  post(message: FromThread): void {
    if (!this.#portClosed) this.#port.postMessage(message);
  }

  #onMessage(message: ToThread): void {
    switch (message.op) {
      case "open": {
        const stream = new Stream(this, message.stream, message.transport);
        this.#streams.set(stream.id, stream);
        void stream.connect();
        break;
      }
      case "fetch": {
        const stream = this.#streams.get(message.stream);
        if (stream === undefined) throw new Error(`no stream ${message.stream} on this thread`);
        void stream.fetch(message.id, unpackBatch(message.batch), message.compressLevel);
        break;
      }
      case "drop": {
        const stream = this.#streams.get(message.stream);
        if (stream === undefined) break;
        stream.dropping = true;
        if (message.abort || stream.openBatches === 0) void stream.close(message.abort);
        break;
      }
      case "close":
        void this.#closeAll(message.abort);
        break;
    }
  }

  async #closeAll(abort: boolean): Promise<void> {
    const streams = [...this.#streams.values()];
    await Promise.all(streams.map((stream) => stream.close(abort)));
    this.post({
      op: "closed",
      streams: streams.map((stream) => ({ stream: stream.id, stats: stream.stats() })),
      peakBufferBytes: this.pool.peakInUseBytes,
    });
    if (this.#options.shutdownQuic) await shutdownQuic();
    this.#closePort();
  }

  /** Ends every stream at once and the port with them, as terminating a worker would. */
  terminate(): void {
    for (const stream of this.#streams.values()) stream.destroy();
    this.#closePort();
  }

  #closePort(): void {
    if (this.#portClosed) return;
    this.#portClosed = true;
    this.#port.close();
  }
}

/** One data stream and the batches it is fetching. */
class Stream {
  readonly id: number;
  readonly transport: TransportKind;
  readonly #runner: StreamContext;
  /** Where this stream's bytes are counted in `delivered`. */
  readonly #counter: number;
  connection: HostConnection | undefined;
  /** Closing while still connecting cancels the connect. */
  readonly connecting = new AbortController();
  readonly gathered: GatheredWrites;
  openBatches = 0;
  /** Bytes of chunk frames received (compressed ones as sent). */
  wireBytes = 0;
  dropping = false;
  closed: Promise<void> | undefined;
  #lostPosted = false;

  constructor(runner: StreamContext, id: number, transport: TransportKind) {
    this.#runner = runner;
    this.id = id;
    this.transport = transport;
    this.#counter = deliveredSlot(transport);
    this.gathered = new GatheredWrites(runner.pool);
  }

  async connect(): Promise<void> {
    try {
      this.connection = await this.#runner.factory.open(this.transport, {
        pool: this.#runner.pool,
        signal: this.connecting.signal,
        onClose: (error) => this.#lost(error),
        pipelined: true,
      });
      this.#runner.receiveLimit?.throttle(this.connection.stream.stream);
      this.#runner.post({ op: "ready", stream: this.id });
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
    this.#runner.post({ op: "lost", stream: this.id, error: serializeError(error) });
  }

  async fetch(id: number, chunks: ChunkWrite[], compressLevel: number): Promise<void> {
    this.openBatches++;
    const { delivered } = this.#runner;
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
      this.#runner.post({ op: "done", id });
    } catch (err) {
      // What is gathered may be another open batch's: verified bytes, written, never dropped.
      try {
        this.gathered.flush();
      } catch {
        // kept in gathered.error: the other batches fail too
      }
      this.#runner.post({ op: "failed", id, error: serializeError(toTeleportError(err)) });
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

  /** Ends the connection at once, even one closing gracefully. */
  destroy(): void {
    this.connecting.abort();
    this.connection?.destroy();
  }

  stats(): StreamStats {
    return { bytes: this.gathered.written, wireBytes: this.wireBytes };
  }
}

/** The factory a worker's data describes: its streams dialed, or routed to it. */
function revivedFactory(data: StreamThreadData): DataStreamFactory {
  if (data.routed === undefined) return DataStreamFactory.revive(data.streams);
  const { spec, port } = data.routed;
  return new RoutedStreamFactory(
    DataStreamFactory.reviveSpec(data.streams),
    spec,
    new PortRoutedSockets(port),
  );
}
