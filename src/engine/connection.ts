/**
 * One framed, authenticated byte stream (a transport's stream: a TLS socket, a QUIC stream) with
 * backpressure, an idle timeout and an idempotent close/destroy lifecycle. It knows frames, not
 * requests: the host session and the client build request handling on top of it.
 */
import type { Duplex } from "node:stream";
import { ErrorCode, TeleportError, toConnectionError, toTeleportError } from "../errors.js";
import { type Codec, encodeWithHeadroom } from "../wire/codec.js";
import { FRAME_HEADER_SIZE, FrameDecoder, writeFrameHeader } from "../wire/frame.js";
import { type ErrorMessage, errorCodec, MAX_FRAME_BODY, MessageType } from "../wire/messages.js";

export interface ConnectionHandler {
  /** Buffer for a large incoming frame body; throw a TeleportError to refuse the frame. */
  allocateBody(type: number, requestId: number, bodyLength: number): Buffer;
  onFrame(type: number, requestId: number, body: Buffer, owned: boolean): void;
  onClose(error: TeleportError | undefined): void;
}

export interface ConnectionOptions {
  idleTimeoutMs?: number;
  /** Queued outgoing bytes above which senders wait for 'drain'. */
  writeBufferBytes?: number;
  /** Applied to each frame sent by sendFrame: a plaintext stream's MAC (transport/frame-mac.ts). */
  sealFrame?: ((frame: Buffer) => Buffer) | undefined;
  /**
   * The stream's TransportStream.steerReads, where it has one: the connection then has large
   * frame bodies read straight into their buffers.
   */
  steerReads?: ((target: () => Buffer | undefined) => void) | undefined;
}

interface SocketListeners {
  data(data: Buffer): void;
  error(err: Error): void;
  end(): void;
  drain(): void;
  close(): void;
}

export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
const DEFAULT_WRITE_BUFFER_BYTES = 4 * 1024 * 1024;

export class Connection {
  readonly socket: Duplex;
  readonly #handler: ConnectionHandler;
  readonly #decoder: FrameDecoder;
  readonly #writeBufferBytes: number;
  readonly #sealFrame: ((frame: Buffer) => Buffer) | undefined;
  #error: TeleportError | undefined;
  #destroyed = false;
  #closing: Promise<void> | undefined;
  #corked = false;
  readonly idleTimeoutMs: number;
  #lastReceived = performance.now();
  /** When a write last completed, or the queue last went from empty to not. */
  #lastSent = performance.now();
  readonly #idleTimer: NodeJS.Timeout;
  readonly #closed: Promise<void>;
  /** The last direct write queued (see writeDirect): each waits for the one before. */
  #directTail: Promise<void> = Promise.resolve();
  /** A direct write is under way: the socket's own writes are held. */
  #writingDirect = false;
  /** Senders waiting for the outgoing queue to drain; one 'drain' listener serves them all. */
  readonly #writableWaiters: { resolve: () => void; reject: (error: TeleportError) => void }[] = [];
  /** What the connection listens to on its socket (removed by release). */
  readonly #listeners: SocketListeners;

  constructor(socket: Duplex, handler: ConnectionHandler, options: ConnectionOptions = {}) {
    this.socket = socket;
    this.#handler = handler;
    this.#writeBufferBytes = options.writeBufferBytes ?? DEFAULT_WRITE_BUFFER_BYTES;
    this.#sealFrame = options.sealFrame;
    this.#decoder = new FrameDecoder(handler, MAX_FRAME_BODY);
    options.steerReads?.(() => this.#decoder.bodyRemainder());
    this.#closed = new Promise((resolve) => socket.once("close", () => resolve()));

    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.#idleTimer = setInterval(() => this.#checkIdle(), Math.min(this.idleTimeoutMs / 4, 1000)).unref();
    this.#listeners = {
      data: (data: Buffer) => {
        this.#lastReceived = performance.now();
        this.#onData(data);
      },
      error: (err: Error) => this.destroy(toConnectionError(err)),
      end: () => {
        if (!this.#decoder.idle) {
          this.destroy(new TeleportError(ErrorCode.CONNECTION, "peer closed the connection mid-frame"));
        }
      },
      drain: () => this.#wakeWritableWaiters(),
      close: () => {
        clearInterval(this.#idleTimer);
        this.#destroyed = true;
        this.#wakeWritableWaiters(this.#error ?? closedError());
        this.#handler.onClose(this.#error);
      },
    };
    this.#listen("on");
  }

  #listen(method: "on" | "off"): void {
    const { socket } = this;
    const listeners = this.#listeners;
    socket[method]("data", listeners.data);
    socket[method]("error", listeners.error);
    socket[method]("end", listeners.end);
    socket[method]("drain", listeners.drain);
    socket[method]("close", listeners.close);
  }

  /**
   * Hands the stream over to another Connection (an upload's swap of roles, push/): stops
   * reading it and watching it, and never closes it. Only where the peer has nothing in flight:
   * a frame half read, or frames after the last one read, would be lost.
   */
  release(): Duplex {
    if (!this.#decoder.idle) throw new TeleportError(ErrorCode.PROTOCOL, "stream handed over mid-frame");
    clearInterval(this.#idleTimer);
    this.#uncork();
    this.#listen("off");
    return this.socket;
  }

  get destroyed(): boolean {
    return this.#destroyed || this.socket.destroyed;
  }

  get error(): TeleportError | undefined {
    return this.#error;
  }

  /**
   * Idle means nothing received: a peer that is stopped or gone sends nothing, while our own
   * writes (pings, requests) would keep a socket timeout from ever firing. Peers that have
   * nothing to say ping (TeleportClient.keepAliveMs) and answer pings. A peer that still sends
   * but stopped reading is found by its side of the queue: nothing written for twice as long
   * (a write is up to ~2 MiB, which a 300 kbit/s link takes a minute to carry).
   */
  #checkIdle(): void {
    const now = performance.now();
    if (now - this.#lastReceived >= this.idleTimeoutMs) {
      const seconds = (this.idleTimeoutMs / 1000).toFixed(1);
      this.destroy(new TeleportError(ErrorCode.TIMEOUT, `peer sent nothing for ${seconds} s`));
    } else if (this.#writing && now - this.#lastSent >= 2 * this.idleTimeoutMs) {
      const seconds = ((2 * this.idleTimeoutMs) / 1000).toFixed(1);
      this.destroy(new TeleportError(ErrorCode.TIMEOUT, `peer read nothing for ${seconds} s`));
    }
  }

  get #writing(): boolean {
    return this.socket.writableLength > 0 || this.#writingDirect;
  }

  #onData(data: Buffer): void {
    try {
      this.#decoder.push(data);
    } catch (err) {
      const error = toTeleportError(err);
      this.sendError(0, { code: error.code, message: error.detail });
      this.destroy(error);
    }
  }

  /** Encodes and queues one small message. */
  send<T>(type: number, requestId: number, codec: Codec<T>, value: T): void {
    this.sendFrame(encodeFrame(type, requestId, codec, value));
  }

  /** Queues a frame made by `encodeFrame`. */
  sendFrame(frame: Buffer): void {
    if (this.destroyed || this.#closing !== undefined) return;
    this.#queueing();
    this.#cork();
    this.socket.write(this.#sealFrame === undefined ? frame : this.#sealFrame(frame), this.#afterWrite);
  }

  /**
   * Holds small frames queued in the same tick and sends them together: one TLS record and one
   * system call for a manifest's many small frames instead of one each.
   */
  #cork(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.socket.cork();
    process.nextTick(this.#uncork);
  }

  readonly #uncork = (): void => {
    if (!this.#corked) return;
    this.#corked = false;
    this.socket.uncork();
  };

  /** A write into an empty queue starts the clock on the peer's reading. */
  #queueing(): void {
    if (this.socket.writableLength === 0) this.#lastSent = performance.now();
  }

  sendError(requestId: number, error: ErrorMessage): void {
    this.send(MessageType.ERROR, requestId, errorCodec, error);
  }

  /**
   * Queues a frame the caller built in place (header written with `writeFrameHeader`), so bulk
   * data goes to the socket in one write without a copy. `onWritten` runs once `frame` may be reused.
   */
  sendOwnedFrame(frame: Buffer, onWritten: () => void): void {
    if (this.destroyed || this.#closing !== undefined) {
      onWritten();
      return;
    }
    this.#uncork(); // bulk frames go out on their own: gathered with others, TLS would copy them
    this.#queueing();
    this.socket.write(frame, () => {
      onWritten();
      this.#afterWrite();
    });
  }

  /**
   * Wakes senders as soon as the queue is below the limit again. Node's 'drain' waits for the
   * queue to empty completely, which never happens while several requests keep adding to it:
   * they all waited, and kept their requests open, until the host hit its open-request cap.
   */
  readonly #afterWrite = (): void => {
    this.#lastSent = performance.now();
    if (this.#writableWaiters.length > 0 && this.socket.writableLength < this.#writeBufferBytes) {
      this.#wakeWritableWaiters();
    }
  };

  /**
   * Runs `write`, which writes to the socket's descriptor itself (a plaintext stream's sender),
   * once all queued before it has gone to the kernel. Frames sent meanwhile are held, and follow
   * it. Direct writes run one at a time, in the order asked for.
   */
  writeDirect(write: () => Promise<void>): Promise<void> {
    const run = this.#directTail.then(() => this.#runDirect(write));
    this.#directTail = run.catch(() => {});
    return run;
  }

  async #runDirect(write: () => Promise<void>): Promise<void> {
    this.#uncork();
    // Written means handed to the kernel: a zero-byte write's callback comes after all before it.
    while (this.socket.writableLength > 0 && !this.destroyed) {
      const written = new Promise<void>((resolve) => this.socket.write(EMPTY, () => resolve()));
      await Promise.race([written, this.#closed]);
    }
    if (this.destroyed || this.#closing !== undefined) throw this.#error ?? closedError();
    this.socket.cork();
    this.#writingDirect = true;
    this.#lastSent = performance.now();
    try {
      await write();
    } finally {
      this.#writingDirect = false;
      this.#lastSent = performance.now();
      this.socket.uncork();
    }
  }

  /** Resolves when the outgoing queue is short enough to add more; rejects once the connection is gone. */
  whenWritable(): Promise<void> {
    if (this.destroyed) return Promise.reject(this.#error ?? closedError());
    if (this.socket.writableLength < this.#writeBufferBytes) return Promise.resolve();
    return new Promise((resolve, reject) => this.#writableWaiters.push({ resolve, reject }));
  }

  #wakeWritableWaiters(error?: TeleportError): void {
    const waiters = this.#writableWaiters.splice(0);
    for (const waiter of waiters) {
      if (error === undefined) waiter.resolve();
      else waiter.reject(error);
    }
  }

  /** Abrupt end: fails everything in flight with `error`. Idempotent. */
  destroy(error?: TeleportError): void {
    if (this.#error === undefined && error !== undefined) this.#error = error;
    this.socket.destroy();
  }

  /**
   * Graceful end: flushes what is queued, sends nothing more (later sends are dropped, so that
   * no write after end turns the close into a reset that loses the last frames), then closes. `reason`, if given, is what the close
   * is reported with. Repeat calls return the same promise.
   */
  close(reason?: TeleportError): Promise<void> {
    if (this.#error === undefined && reason !== undefined) this.#error = reason;
    this.#closing ??= (async () => {
      if (!this.destroyed) {
        this.socket.end();
        const timer = setTimeout(() => this.destroy(), 5_000).unref();
        await this.#closed;
        clearTimeout(timer);
      }
    })();
    return this.#closing;
  }

  get closed(): Promise<void> {
    return this.#closed;
  }
}

/** A whole frame, header included, for one message. */
export function encodeFrame<T>(type: number, requestId: number, codec: Codec<T>, value: T): Buffer {
  const frame = encodeWithHeadroom(codec, value, FRAME_HEADER_SIZE);
  writeFrameHeader(frame, 0, type, requestId, frame.length - FRAME_HEADER_SIZE);
  return frame;
}

const EMPTY = Buffer.alloc(0);

function closedError(): TeleportError {
  return new TeleportError(ErrorCode.CONNECTION, "connection closed");
}
