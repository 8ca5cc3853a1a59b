/**
 * How a client's TCP streams (TLS and plaintext) receive: through Node's `onread`, into memory
 * the stream chooses, instead of a new buffer per read pushed through a Readable. Reads land in
 * one buffer the stream owns, or, while its reader assembles a large frame body and says so
 * (`steer`), straight into the rest of that body: a plaintext read goes there from the kernel,
 * TLS decrypts its record there, so the body is never copied again. Data still arrives as
 * 'data' events (a view valid only during the event, as the frame decoder expects), and
 * pause/resume still stop and start reading.
 *
 * Only a socket that teleport connects can read this way: Node takes `onread` at connect, not
 * for the sockets a server accepts.
 */
import type { OnReadOpts, Socket } from "node:net";

/** The buffer reads land in between frame bodies: up to this much per plaintext read system call. */
const READ_BUFFER_BYTES = 256 * 1024;
/**
 * A body remainder shorter than this is read through the stream's buffer together with what
 * follows it: read on its own, it would cost a plaintext stream a system call of its own.
 */
const MIN_DIRECT_BYTES = 16 * 1024;

/** Where the next read may land (the rest of the body being assembled), or undefined for anywhere. */
export type ReadTarget = () => Buffer | undefined;

export class DirectReads {
  readonly #scratch = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  /** What the socket reads into now: Node's onread asks for it before each read. */
  #current: Buffer = this.#scratch;
  #target: ReadTarget | undefined;
  #socket: Socket | undefined;
  /** Read before the stream had a reader: see #keepForReader. */
  readonly #early: Buffer[] = [];

  /** Pass as the `onread` option of net.connect or tls.connect, then `attach` the socket. */
  readonly onread: OnReadOpts = {
    buffer: () => this.#nextBuffer(),
    // Always true: `false` would stop reading, and the stream's reader never pushes back (a
    // reader that must wait pauses the socket, which stops reading as well).
    callback: (bytes) => {
      const socket = this.#socket;
      const data = this.#current.subarray(0, bytes);
      if (socket === undefined) return true;
      if (socket.listenerCount("data") > 0) socket.emit("data", data);
      else this.#keepForReader(socket, data);
      return true;
    },
  };

  attach(socket: Socket): void {
    this.#socket = socket;
  }

  /** From now on, reads land where `target` says when it names a buffer. */
  steer(target: ReadTarget): void {
    this.#target = target;
  }

  /**
   * Bytes that come while the stream has no reader (between its handshake and its Connection; a
   * host may refuse at once) are kept, as copies (the next read reuses this memory), and given to
   * the first reader in order: right after it starts listening, before any later read.
   */
  #keepForReader(socket: Socket, data: Buffer): void {
    if (this.#early.length === 0) {
      const deliver = (event: string | symbol) => {
        if (event !== "data") return;
        socket.off("newListener", deliver);
        process.nextTick(() => {
          for (const bytes of this.#early.splice(0)) socket.emit("data", bytes);
        });
      };
      socket.on("newListener", deliver);
    }
    this.#early.push(Buffer.from(data));
  }

  #nextBuffer(): Buffer {
    const body = this.#target?.();
    this.#current = body !== undefined && body.length >= MIN_DIRECT_BYTES ? body : this.#scratch;
    return this.#current;
  }
}
