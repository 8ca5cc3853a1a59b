/**
 * Requests over one connection: request ids, the pending map, credit checks, cancellation, and
 * streamed answers as async iterators. Each HostConnection has one: the control connection and
 * every data stream of the pool.
 */
import type { Duplex } from "node:stream";
import type { BufferPool } from "../engine/buffer-pool.js";
import { Connection, type ConnectionOptions } from "../engine/connection.js";
import { authDelayedHint, ErrorCode, isErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { type Codec, decodeMessage } from "../wire/codec.js";
import {
  creditCodec,
  type ErrorMessage,
  emptyCodec,
  errorCodec,
  MessageType,
  protocol,
} from "../wire/messages.js";

/** Credit granted to streamed listings and manifests: how far the host may run ahead of us. */
export const STREAM_WINDOW_BYTES = 1024 * 1024;

/** Cancelled requests whose frames in flight are still taken: their answers come within a round trip. */
const MAX_CANCELLED_REMEMBERED = 256;

export interface PendingRequest {
  /** Bytes the host may still send for this request. */
  credit: number;
  /** Returns true to keep `body` (a pooled buffer the handler releases later). */
  onFrame(type: number, body: Buffer): boolean | undefined;
  onEnd(): void;
  onError(error: TeleportError): void;
}

export interface ChannelEvents {
  /** Frames with request id 0: WELCOME, connection errors, PONG. */
  onConnectionFrame(type: number, body: Buffer): void;
  onClose(error: TeleportError): void;
}

export class RequestChannel {
  readonly connection: Connection;
  readonly #pool: BufferPool;
  readonly #events: ChannelEvents;
  readonly #requests = new Map<number, PendingRequest>();
  /**
   * Bulk bytes the host may still send for requests we cancelled: its CANCEL crosses their
   * frames in flight, which are taken (up to the credit they had) and dropped, and it answers
   * a CANCEL with nothing. The oldest are forgotten past MAX_CANCELLED_REMEMBERED.
   */
  readonly #cancelledCredit = new Map<number, number>();
  #nextRequestId = 1;

  constructor(socket: Duplex, pool: BufferPool, events: ChannelEvents, options: ConnectionOptions = {}) {
    this.#pool = pool;
    this.#events = events;
    this.connection = new Connection(
      socket,
      {
        allocateBody: (type, requestId, length) => this.#allocateBody(type, requestId, length),
        onFrame: (type, requestId, body, owned) => this.#onFrame(type, requestId, body, owned),
        onClose: (error) => this.#onClose(error),
      },
      options,
    );
  }

  get openRequests(): number {
    return this.#requests.size;
  }

  #allocateBody(type: number, requestId: number, length: number): Buffer {
    const pending = this.#requests.get(requestId) ?? this.#inFlightAfterCancel(requestId, length);
    if (pending === undefined || length > pending.credit) {
      throw new TeleportError(
        ErrorCode.PROTOCOL,
        `host sent ${length} bytes that request ${requestId} did not ask for`,
      );
    }
    if (!protocol.isBulk(type)) {
      throw new TeleportError(ErrorCode.PROTOCOL, `unexpected ${length}-byte frame of type ${type}`);
    }
    return this.#pool.acquire(length);
  }

  /** A cancelled request's frame within the credit it had: taken, then dropped by #onFrame. */
  #inFlightAfterCancel(requestId: number, length: number): { credit: number } | undefined {
    const credit = this.#cancelledCredit.get(requestId);
    if (credit === undefined || length > credit) return undefined;
    this.#cancelledCredit.set(requestId, credit - length);
    return { credit };
  }

  #onFrame(type: number, requestId: number, body: Buffer, owned: boolean): void {
    if (requestId === 0) {
      this.#events.onConnectionFrame(type, body);
      return;
    }
    const pending = this.#requests.get(requestId);
    if (pending === undefined) {
      // A response to a request we cancelled; frames may still be in flight.
      this.#pool.release(body);
      return;
    }
    let kept = false;
    try {
      if (type === MessageType.END) {
        this.#requests.delete(requestId);
        pending.onEnd();
      } else if (type === MessageType.ERROR) {
        this.#requests.delete(requestId);
        pending.onError(remoteError(body));
      } else {
        pending.credit -= body.length;
        if (pending.credit < 0)
          throw new TeleportError(ErrorCode.PROTOCOL, `host overran the credit of request ${requestId}`);
        kept = pending.onFrame(type, owned ? body : Buffer.from(body)) === true;
      }
    } catch (err) {
      this.#requests.delete(requestId);
      this.#rememberCancelled(requestId, pending.credit);
      this.connection.send(MessageType.CANCEL, requestId, emptyCodec, {});
      pending.onError(toTeleportError(err));
    } finally {
      if (!kept) this.#pool.release(body);
    }
  }

  #onClose(error: TeleportError | undefined): void {
    const reason = error ?? new TeleportError(ErrorCode.CONNECTION, "host closed the connection");
    for (const pending of this.#requests.values()) pending.onError(reason);
    this.#requests.clear();
    this.#events.onClose(reason);
  }

  /** Opens a request; `pending` receives its frames. */
  open<T>(
    type: number,
    codec: Codec<T>,
    value: T,
    pending: PendingRequest,
    signal?: AbortSignal,
  ): { requestId: number; cancel: () => void } {
    if (this.connection.destroyed)
      throw this.connection.error ?? new TeleportError(ErrorCode.CONNECTION, "connection closed");
    if (signal?.aborted === true) throw new TeleportError(ErrorCode.CANCELLED, "request cancelled");
    const requestId = this.#nextRequestId++;
    if (this.#nextRequestId > 0xffff_ffff) this.#nextRequestId = 1;
    this.#requests.set(requestId, pending);
    this.connection.send(type, requestId, codec, value);
    const cancel = () => {
      if (!this.#requests.delete(requestId)) return;
      this.#rememberCancelled(requestId, pending.credit);
      this.connection.send(MessageType.CANCEL, requestId, emptyCodec, {});
      pending.onError(new TeleportError(ErrorCode.CANCELLED, "request cancelled"));
    };
    if (signal !== undefined) {
      signal.addEventListener("abort", cancel, { once: true });
      const { onEnd, onError } = pending;
      pending.onEnd = () => {
        signal.removeEventListener("abort", cancel);
        onEnd();
      };
      pending.onError = (error) => {
        signal.removeEventListener("abort", cancel);
        onError(error);
      };
    }
    return { requestId, cancel };
  }

  #rememberCancelled(requestId: number, credit: number): void {
    this.#cancelledCredit.set(requestId, credit);
    if (this.#cancelledCredit.size <= MAX_CANCELLED_REMEMBERED) return;
    const oldest = this.#cancelledCredit.keys().next();
    if (oldest.done !== true) this.#cancelledCredit.delete(oldest.value);
  }

  /**
   * A streamed response as an async iterator of raw frames. Credit is returned to the host as the
   * consumer takes frames, so the host never runs more than the window ahead.
   */
  async *stream<T>(
    type: number,
    codec: Codec<T>,
    value: T & { credit?: number },
    signal?: AbortSignal,
  ): AsyncGenerator<{ type: number; body: Buffer }> {
    // Frames in arrival order from `head` on: Array.shift on a queue of thousands of small frames
    // (a manifest of small files runs a megabyte ahead) cost a second per 20,000 files.
    let queue: { type: number; body: Buffer }[] = [];
    let head = 0;
    let done = false;
    let failure: TeleportError | undefined;
    let wake: (() => void) | undefined;
    const window = value.credit ?? STREAM_WINDOW_BYTES;
    const pending: PendingRequest = {
      credit: window,
      onFrame: (frameType, body) => {
        queue.push({ type: frameType, body });
        wake?.();
        return true; // pooled bodies go back to the pool once the consumer is done with them
      },
      onEnd: () => {
        done = true;
        wake?.();
      },
      onError: (error) => {
        failure = error;
        wake?.();
      },
    };
    const { requestId, cancel } = this.open(type, codec, value, pending, signal);
    let unacknowledged = 0;
    try {
      for (;;) {
        const frame = queue[head];
        if (frame !== undefined) {
          queue[head++] = undefined as never;
          if (head === queue.length) {
            queue = [];
            head = 0;
          } else if (head >= 1024 && head * 2 >= queue.length) {
            queue = queue.slice(head);
            head = 0;
          }
          unacknowledged += frame.body.length;
          if (unacknowledged >= window / 2 && !done) {
            pending.credit += unacknowledged;
            this.connection.send(MessageType.CREDIT, requestId, creditCodec, { bytes: unacknowledged });
            unacknowledged = 0;
          }
          try {
            yield frame;
          } finally {
            this.#pool.release(frame.body);
          }
          continue;
        }
        if (failure !== undefined) throw failure;
        if (done) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      if (!done && failure === undefined) cancel();
      for (const frame of queue.slice(head)) this.#pool.release(frame.body);
    }
  }

  close(): Promise<void> {
    return this.connection.close();
  }

  destroy(error?: TeleportError): void {
    this.connection.destroy(error);
  }
}

export function remoteError(body: Buffer): TeleportError {
  return hostError(decodeMessage(errorCodec, body));
}

/** The host's ERROR as ours: its code where we know it, PROTOCOL where not. */
export function hostError({ code, message, authDelayWindowMs, retryAfterMs }: ErrorMessage): TeleportError {
  const hint = authDelayWindowMs ? authDelayedHint(authDelayWindowMs) : undefined;
  const known = isErrorCode(code) ? code : ErrorCode.PROTOCOL;
  return new TeleportError(known, `host: ${message}`, { hint, retryAfterMs });
}
