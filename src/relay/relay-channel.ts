/**
 * A connection to a relay from a peer's side (a host's control connection and accept legs, a
 * client's CONNECT, a reflect, a service's client): the HELLO read, then relay messages sent and
 * awaited in order, until the connection is released to carry raw bytes (after SPLICED) or
 * closed. Every wait is bounded by a timeout and an AbortSignal; what the relay says is checked
 * by relay-protocol.ts like anything else from the network.
 */
import * as net from "node:net";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import {
  decodeRelayMessage,
  encodeRelayFrame,
  encodeRelayMessage,
  formatRelayAddress,
  isServiceType,
  RELAY_PROTOCOL_VERSION,
  type RefusalReason,
  type RelayAddress,
  type RelayFrame,
  RelayFrameDecoder,
  type RelayMessage,
  type RelayPeer,
  RelayType,
} from "./relay-protocol.js";

/** How long a relay may take to answer each step, unless told otherwise. */
export const RELAY_STEP_TIMEOUT_MS = 10_000;
/** Frames read ahead of their reader before the socket is paused. */
const MAX_QUEUED_FRAMES = 32;

export interface RelayDialOptions {
  signal?: AbortSignal | undefined;
  /** Each step's limit: the TCP connect with HELLO, then each awaited answer. */
  timeoutMs?: number | undefined;
}

type Waiter = { resolve: (frame: RelayFrame) => void; reject: (error: Error) => void };

export class RelayChannel {
  readonly socket: net.Socket;
  readonly where: string;
  /** The relay's nonce, from its HELLO: what a REGISTER signs. */
  nonce: Buffer = Buffer.alloc(0);
  readonly #decoder = new RelayFrameDecoder();
  readonly #queued: RelayFrame[] = [];
  #waiter: Waiter | undefined;
  #ended: Error | undefined;
  #released = false;

  private constructor(socket: net.Socket, where: string) {
    this.socket = socket;
    this.where = where;
    socket.on("data", this.#onData);
    socket.on("error", this.#onError);
    socket.on("close", this.#onClose);
  }

  readonly #onError = (err: Error) => this.#end(toTeleportError(err, `relay ${this.where}`));

  readonly #onClose = () =>
    this.#end(new TeleportError(ErrorCode.CONNECTION, `relay ${this.where} closed the connection`));

  /** Connects to the relay and reads its HELLO. */
  static async connect(address: RelayAddress, options: RelayDialOptions = {}): Promise<RelayChannel> {
    const where = formatRelayAddress(address);
    const socket = net.connect({ host: address.host, port: address.port });
    socket.setNoDelay(true);
    const channel = new RelayChannel(socket, where);
    const hello = await channel.next(options);
    if (hello.type !== RelayType.HELLO) throw channel.#unexpected(hello);
    if (hello.version !== RELAY_PROTOCOL_VERSION) {
      channel.close();
      throw new TeleportError(ErrorCode.VERSION, `relay ${where} speaks relay protocol ${hello.version}`);
    }
    channel.nonce = Buffer.from(hello.nonce);
    return channel;
  }

  send(message: RelayMessage): void {
    this.socket.write(encodeRelayMessage(message));
  }

  /**
   * The next relay message, within the step's timeout; a REFUSED rejects with RELAY_REFUSED, and
   * a frame of a service's type with PROTOCOL (use nextFrame for those).
   */
  async next(options: RelayDialOptions = {}): Promise<RelayMessage> {
    const frame = await this.nextFrame(options);
    let message: RelayMessage;
    try {
      message = decodeRelayMessage(frame);
    } catch (err) {
      this.close();
      throw err;
    }
    if (message.type === RelayType.REFUSED) {
      this.close();
      throw refusal(this.where, message.reason, message.detail);
    }
    return message;
  }

  /** The next frame, whatever its type, within the step's timeout. */
  nextFrame(options: RelayDialOptions = {}): Promise<RelayFrame> {
    const queued = this.#queued.shift();
    if (queued !== undefined) {
      if (this.#queued.length < MAX_QUEUED_FRAMES / 2) this.socket.resume();
      return Promise.resolve(queued);
    }
    if (this.#ended !== undefined) return Promise.reject(this.#ended);
    const { signal, timeoutMs = RELAY_STEP_TIMEOUT_MS } = options;
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#waiter = undefined;
      };
      const fail = (error: Error) => {
        done();
        this.close();
        reject(error);
      };
      const onAbort = () => fail(new TeleportError(ErrorCode.CANCELLED, "relay dial cancelled"));
      const timer = setTimeout(
        () =>
          fail(
            new TeleportError(ErrorCode.TIMEOUT, `relay ${this.where} did not answer within ${timeoutMs} ms`),
          ),
        timeoutMs,
      );
      if (signal?.aborted === true) onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiter = {
        resolve: (frame) => {
          done();
          resolve(frame);
        },
        reject: fail,
      };
    });
  }

  /**
   * Stops reading relay frames: the socket now carries raw bytes, starting with `remainder` (what
   * was read after the last frame). The socket is paused, its listeners of ours removed.
   */
  release(): { socket: net.Socket; remainder: Buffer } {
    this.#released = true;
    this.socket.pause();
    this.socket.off("data", this.#onData);
    this.socket.off("error", this.#onError);
    this.socket.off("close", this.#onClose);
    return { socket: this.socket, remainder: this.#decoder.remainder() };
  }

  close(): void {
    this.socket.destroy();
  }

  /** The connection as a service's client (SERVICE sent and the service's frames to follow). */
  asServicePeer(): RelayPeer {
    return servicePeer(this);
  }

  #unexpected(message: RelayMessage): TeleportError {
    this.close();
    return new TeleportError(
      ErrorCode.PROTOCOL,
      `relay ${this.where} sent message 0x${message.type.toString(16)} out of its place`,
    );
  }

  readonly #onData = (data: Buffer): void => {
    try {
      this.#decoder.push(data);
      for (let frame = this.#decoder.next(); frame !== undefined && !this.#released; ) {
        // The frame's body is a view of the decoder's buffer: copied, as a reader may hold it.
        this.#deliver({ type: frame.type, body: Buffer.from(frame.body) });
        if (this.#released) break;
        frame = this.#decoder.next();
      }
    } catch (err) {
      this.#end(toTeleportError(err));
      this.socket.destroy();
    }
  };

  #deliver(frame: RelayFrame): void {
    if (this.#waiter !== undefined) {
      this.#waiter.resolve(frame);
      return;
    }
    this.#queued.push(frame);
    if (this.#queued.length >= MAX_QUEUED_FRAMES) this.socket.pause();
  }

  #end(error: Error): void {
    if (this.#ended !== undefined || this.#released) return;
    this.#ended = error;
    this.#waiter?.reject(error);
  }
}

export function refusal(where: string, reason: RefusalReason | string, detail: string): TeleportError {
  return new TeleportError(ErrorCode.RELAY_REFUSED, `relay ${where} refused: ${reason}: ${detail}`);
}

/** A channel as a RelayPeer: frames of the service's types, both ways. */
function servicePeer(channel: RelayChannel): RelayPeer {
  const closeListeners: ((error?: Error) => void)[] = [];
  let frameListener: ((type: number, body: Buffer) => void) | undefined;
  const pump = async () => {
    for (;;) {
      const frame = await channel.nextFrame({ timeoutMs: 2 ** 31 - 1 });
      if (frame.type === RelayType.PING) {
        channel.send({ type: RelayType.PONG });
        continue;
      }
      if (frame.type === RelayType.REFUSED) throw refusal(channel.where, "refused", "by the relay");
      if (!isServiceType(frame.type)) throw new TeleportError(ErrorCode.PROTOCOL, "relay frame out of place");
      frameListener?.(frame.type, frame.body);
    }
  };
  return {
    remoteAddress: channel.socket.remoteAddress ?? "",
    remotePort: channel.socket.remotePort ?? 0,
    onFrame(listener) {
      const first = frameListener === undefined;
      frameListener = listener;
      if (first)
        pump().catch((error: Error) => {
          channel.close();
          for (const close of closeListeners.splice(0)) close(error);
        });
    },
    onClose(listener) {
      closeListeners.push(listener);
    },
    send(type, body) {
      if (!isServiceType(type))
        throw new TeleportError(ErrorCode.USAGE, `0x${type.toString(16)} is not a service frame type`);
      channel.socket.write(encodeRelayFrame(type, body));
    },
    refuse(reason, detail) {
      channel.send({ type: RelayType.REFUSED, reason, detail });
      channel.socket.end();
    },
    close() {
      channel.close();
    },
  };
}

/** Opens a connection to the service `name` mounted in the relay at `address`. */
export async function openRelayService(
  address: RelayAddress,
  name: string,
  options: RelayDialOptions = {},
): Promise<RelayPeer> {
  const channel = await RelayChannel.connect(address, options);
  channel.send({ type: RelayType.SERVICE, name });
  return channel.asServicePeer();
}
