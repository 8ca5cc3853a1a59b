/**
 * One mailbox connection: frames in and out over a socket, read one at a time with a deadline.
 * Frames nobody has read yet are bounded (MAX_QUEUED): a peer that floods is cut off.
 */
import type { Socket } from "node:net";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { encodeMailboxFrame, type MailboxFrame, MailboxFrameReader } from "./mailbox-protocol.js";

/** More unread frames than any exchange has: a peer past it is not following the protocol. */
const MAX_QUEUED = 16;

type Waiter = { resolve(frame: MailboxFrame): void; reject(err: TeleportError): void };

export class MailboxConnection {
  readonly socket: Socket;
  readonly #reader = new MailboxFrameReader();
  readonly #queue: MailboxFrame[] = [];
  #waiter: Waiter | undefined;
  #ended: TeleportError | undefined;
  readonly closed: Promise<void>;

  /** `leading`: bytes already read from the socket (by a relay that dispatched on them). */
  constructor(socket: Socket, leading?: Buffer) {
    this.socket = socket;
    socket.setNoDelay(true);
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.on("data", (chunk: Buffer) => this.#receive(chunk));
    socket.on("error", (err) => this.#end(toTeleportError(err, "mailbox")));
    socket.on("close", () =>
      this.#end(new TeleportError(ErrorCode.CONNECTION, "the mailbox connection closed")),
    );
    if (leading !== undefined && leading.length > 0) this.#receive(leading);
  }

  /** The peer's address, for logs. */
  get remote(): string {
    return `${this.socket.remoteAddress ?? "?"}:${this.socket.remotePort ?? "?"}`;
  }

  send(frame: MailboxFrame): void {
    if (this.#ended === undefined && !this.socket.destroyed) this.socket.write(encodeMailboxFrame(frame));
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
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  #receive(chunk: Buffer): void {
    let frames: MailboxFrame[];
    try {
      frames = this.#reader.push(chunk);
    } catch (err) {
      this.#end(toTeleportError(err));
      this.socket.destroy();
      return;
    }
    for (const frame of frames) {
      const waiter = this.#waiter;
      if (waiter !== undefined) {
        this.#waiter = undefined;
        waiter.resolve(frame);
      } else if (this.#queue.length < MAX_QUEUED) {
        this.#queue.push(frame);
      } else {
        this.#end(new TeleportError(ErrorCode.PROTOCOL, "mailbox: too many frames unread"));
        this.socket.destroy();
        return;
      }
    }
  }

  #end(err: TeleportError): void {
    this.#ended ??= err;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(this.#ended);
  }
}
