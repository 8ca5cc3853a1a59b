/**
 * The relay's side of one TCP connection while it speaks relay frames: frames cut and checked,
 * their rate bounded, silence timed out, and the connection either handed on raw (`release`,
 * for a splice) or ended with a REFUSED that says why. What the connection is for is the
 * server's business (relay-server.ts); this only carries frames.
 */
import type { Socket } from "node:net";
import { toTeleportError } from "../errors.js";
import type { TokenBucket } from "./relay-limits.js";
import {
  decodeRelayMessage,
  encodeRelayFrame,
  encodeRelayMessage,
  isServiceType,
  RefusalReason as Reason,
  type RefusalReason,
  type RelayFrame,
  RelayFrameDecoder,
  type RelayMessage,
  RelayType,
} from "./relay-protocol.js";

/** How long a refused peer is given to read the REFUSED before the socket is destroyed. */
const REFUSE_LINGER_MS = 1000;

export interface RelayLinkEvents {
  /** A relay message (checked); throwing from here refuses the connection as UNEXPECTED. */
  onMessage(message: RelayMessage): void;
  /** A frame of a service's type, once the link is a service's (`serviceFrames`). */
  onServiceFrame?(type: number, body: Buffer): void;
  /** Once, when the socket has closed (or been released: not then). */
  onClose(error?: Error): void;
}

export class RelayLink {
  readonly socket: Socket;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly #decoder = new RelayFrameDecoder();
  readonly #frames: TokenBucket;
  #events: RelayLinkEvents;
  #released = false;
  #closed = false;
  /** Service frames go to onServiceFrame instead of being refused. */
  serviceFrames = false;

  constructor(socket: Socket, frames: TokenBucket, idleTimeoutMs: number, events: RelayLinkEvents) {
    this.socket = socket;
    this.remoteAddress = socket.remoteAddress ?? "";
    this.remotePort = socket.remotePort ?? 0;
    this.#frames = frames;
    this.#events = events;
    socket.setNoDelay(true);
    socket.setTimeout(idleTimeoutMs, () => this.refuse(Reason.TIMEOUT, "silent for too long"));
    socket.on("data", this.#onData);
    socket.on("error", this.#onError);
    socket.on("close", this.#onClose);
    // The server allows half-open sockets (for splices): a peer that ends before, ends us too.
    socket.on("end", this.#onError);
  }

  readonly #onError = () => this.socket.destroy();

  readonly #onClose = () => {
    if (this.#released || this.#closed) return;
    this.#closed = true;
    this.#events.onClose();
  };

  /** Who hears of this link's frames from now on (the server, then the service it was handed to). */
  set events(events: RelayLinkEvents) {
    this.#events = events;
  }

  setIdleTimeout(ms: number): void {
    this.socket.setTimeout(ms);
  }

  send(message: RelayMessage): void {
    if (!this.socket.destroyed) this.socket.write(encodeRelayMessage(message));
  }

  sendFrame(type: number, body: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(encodeRelayFrame(type, body));
  }

  /** Says why, then closes: the peer reads REFUSED before the connection ends. */
  refuse(reason: RefusalReason, detail: string): void {
    if (this.#released || this.socket.destroyed) return;
    this.#released = true;
    this.socket.off("data", this.#onData);
    this.socket.pause();
    this.socket.end(encodeRelayMessage({ type: RelayType.REFUSED, reason, detail }));
    setTimeout(() => this.socket.destroy(), REFUSE_LINGER_MS).unref();
    if (!this.#closed) {
      this.#closed = true;
      this.#events.onClose();
    }
  }

  close(): void {
    this.socket.destroy();
  }

  /** Stops reading frames: the socket (paused) and the bytes read after the last frame. */
  release(): { socket: Socket; remainder: Buffer } {
    this.#released = true;
    this.socket.pause();
    this.socket.off("data", this.#onData);
    this.socket.off("close", this.#onClose);
    this.socket.off("error", this.#onError);
    this.socket.off("end", this.#onError);
    this.socket.setTimeout(0);
    return { socket: this.socket, remainder: this.#decoder.remainder() };
  }

  readonly #onData = (data: Buffer): void => {
    try {
      this.#decoder.push(data);
      for (let frame = this.#decoder.next(); frame !== undefined; frame = this.#decoder.next()) {
        if (!this.#frames.tryTake(1, performance.now())) {
          this.refuse(Reason.RATE, "too many frames");
          return;
        }
        this.#dispatch(frame);
        if (this.#released) return;
      }
    } catch (err) {
      this.refuse(Reason.UNEXPECTED, toTeleportError(err).detail);
    }
  };

  #dispatch(frame: RelayFrame): void {
    if (this.serviceFrames && isServiceType(frame.type) && this.#events.onServiceFrame !== undefined) {
      this.#events.onServiceFrame(frame.type, Buffer.from(frame.body));
      return;
    }
    const message = decodeRelayMessage(frame);
    if (message.type === RelayType.PING) {
      this.send({ type: RelayType.PONG });
      return;
    }
    if (message.type === RelayType.PONG) return;
    this.#events.onMessage(message);
  }
}
