/**
 * One mailbox connection: frames in and out, read one at a time with a deadline, over a socket
 * (a sender's own mailbox on the LAN, or a client's connection to a relay) or over the relay's
 * RelayPeer (the mailbox mounted in `teleport relay`). Frames nobody has read yet are bounded
 * (MAX_QUEUED): a peer that floods is cut off.
 */
import type { Socket } from "node:net";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import type { RelayPeer } from "../relay/relay-protocol.js";
import {
  decodeMailboxFrame,
  encodeMailboxFrame,
  type MailboxFrame,
  MailboxFrameReader,
} from "./mailbox-protocol.js";

/** More unread frames than any exchange has: a peer past it is not following the protocol. */
const MAX_QUEUED = 16;

/** What carries a connection's frames. */
interface FrameLink {
  readonly remote: string;
  send(frame: MailboxFrame): void;
  /** Ends after what was sent. */
  close(): void;
  destroy(): void;
}

type Waiter = { resolve(frame: MailboxFrame): void; reject(err: TeleportError): void };

export class MailboxConnection {
  readonly #link: FrameLink;
  readonly #queue: MailboxFrame[] = [];
  #waiter: Waiter | undefined;
  #ended: TeleportError | undefined;
  #markClosed: () => void = () => {};
  /** Settles once the connection has ended, however it ended. */
  readonly closed: Promise<void>;

  private constructor(link: (connection: MailboxConnection) => FrameLink) {
    this.closed = new Promise((resolve) => {
      this.#markClosed = resolve;
    });
    this.#link = link(this);
  }

  /** Over a socket: to a sender's own mailbox, or (`relayHello`) to a relay's. */
  static overSocket(socket: Socket, options: { relayHello: boolean }): MailboxConnection {
    return new MailboxConnection((connection) => {
      const reader = new MailboxFrameReader(options);
      socket.setNoDelay(true);
      socket.on("data", (chunk: Buffer) => {
        try {
          for (const frame of reader.push(chunk)) connection.#deliver(frame);
        } catch (err) {
          connection.#end(toTeleportError(err));
          socket.destroy();
        }
      });
      socket.on("error", (err) => connection.#end(toTeleportError(err, "mailbox")));
      socket.on("close", () => connection.#end(closedError()));
      return {
        remote: `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`,
        send: (frame) => {
          if (!socket.destroyed) socket.write(encodeMailboxFrame(frame));
        },
        // Not half-open: a peer (a relay) that keeps its side open must not keep this process alive.
        close: () => socket.end(() => socket.destroy()),
        destroy: () => socket.destroy(),
      };
    });
  }

  /** Over the relay's hook: the mailbox mounted in `teleport relay` (relay-mailbox.ts). */
  static overRelayPeer(peer: RelayPeer): MailboxConnection {
    return new MailboxConnection((connection) => {
      peer.onFrame((type, body) => {
        try {
          connection.#deliver(decodeMailboxFrame(type, body));
        } catch (err) {
          connection.#end(toTeleportError(err));
          peer.close();
        }
      });
      peer.onClose((error) => connection.#end(error === undefined ? closedError() : toTeleportError(error)));
      return {
        remote: `${peer.remoteAddress}:${peer.remotePort}`,
        send: (frame) => {
          const encoded = encodeMailboxFrame(frame);
          peer.send(encoded[2] as number, encoded.subarray(3));
        },
        close: () => peer.close(),
        destroy: () => peer.close(),
      };
    });
  }

  /** The peer's address, for logs. */
  get remote(): string {
    return this.#link.remote;
  }

  send(frame: MailboxFrame): void {
    if (this.#ended === undefined) this.#link.send(frame);
  }

  /** The next frame, or a TIMEOUT after `timeoutMs`, or the error that ended the connection. */
  next(timeoutMs: number): Promise<MailboxFrame> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#ended !== undefined) return Promise.reject(this.#ended);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        reject(new TeleportError(ErrorCode.TIMEOUT, "the mailbox peer sent nothing in time"));
      }, timeoutMs);
      this.#waiter = {
        resolve: (frame) => {
          clearTimeout(timer);
          resolve(frame);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
    });
  }

  /** Sends what is queued, then closes. */
  close(): void {
    this.#link.close();
  }

  destroy(): void {
    this.#link.destroy();
  }

  #deliver(frame: MailboxFrame): void {
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      waiter.resolve(frame);
    } else if (this.#queue.length < MAX_QUEUED) {
      this.#queue.push(frame);
    } else {
      this.#end(new TeleportError(ErrorCode.PROTOCOL, "mailbox: too many frames unread"));
      this.#link.destroy();
    }
  }

  #end(err: TeleportError): void {
    this.#ended ??= err;
    this.#markClosed();
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(this.#ended);
  }
}

function closedError(): TeleportError {
  return new TeleportError(ErrorCode.CONNECTION, "the mailbox connection closed");
}
