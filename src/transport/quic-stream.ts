/**
 * A QUIC stream as a Node Duplex (and a TransportStream), ending as a TLS socket does: when the
 * peer ends, this side ends too once its queue is written (no half-open streams). The
 * connection carries only this stream, so closing one closes the other: the side that reads
 * the peer's end after ending its own knows both directions are delivered, and closes the
 * connection; the other waits for that (at most LINGER_MS), since closing at once could drop
 * its last bytes still in flight.
 */
import { Duplex } from "node:stream";
import { ErrorCode, TeleportError } from "../errors.js";
import { type Conn, holdEventLoop, type QuinnStream, quicError } from "./quic-binding.js";
import type { TransportStream } from "./transport.js";

/** Reads of the binding allocate their length whatever arrives: 64 KiB ran as fast as 1 MiB. */
const READ_BYTES = 64 * 1024;
/** Queued writes up to this size are sent together (a manifest's small frames). */
const GATHER_BYTES = 256 * 1024;
/** How long the side that ended first waits for the other to close the connection. */
const LINGER_MS = 2000;

export class QuicStream extends Duplex implements TransportStream {
  readonly transport = "quic" as const;
  readonly encrypted = true;
  readonly stream: Duplex = this;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly #connection: Conn;
  readonly #quic: QuinnStream;
  readonly #binding: Buffer;
  readonly #handshakeMs: number | undefined;
  #reading = false;
  #writeFinished = false;
  /** This side ended before reading the peer's end: the peer's end then answers ours. */
  #endedFirst = false;
  #readEnded = false;
  #bytesSent = 0;
  #bytesReceived = 0;
  readonly #release = holdEventLoop();

  constructor(
    connection: Conn,
    quic: QuinnStream,
    binding: Buffer,
    remote: { address: string; port: number },
    handshakeMs: number | undefined,
  ) {
    super({ allowHalfOpen: false, writableHighWaterMark: 1024 * 1024 });
    this.#connection = connection;
    this.#quic = quic;
    this.#binding = binding;
    this.#handshakeMs = handshakeMs;
    this.remoteAddress = remote.address;
    this.remotePort = remote.port;
    connection.closed.then(() => this.#connectionClosed());
    this.once("close", this.#release);
  }

  sessionBinding(): Buffer {
    return Buffer.from(this.#binding);
  }

  stats() {
    const rttMs = this.#connection.rtt() ?? this.#handshakeMs;
    return { rttMs, bytesSent: this.#bytesSent, bytesReceived: this.#bytesReceived };
  }

  #connectionClosed(): void {
    if (this.destroyed) return;
    const graceful = this.#readEnded && this.#writeFinished;
    this.destroy(graceful ? undefined : new TeleportError(ErrorCode.CONNECTION, "QUIC connection closed"));
  }

  override _read(): void {
    if (!this.#reading) void this.#pump();
  }

  async #pump(): Promise<void> {
    this.#reading = true;
    try {
      for (;;) {
        const data = await this.#quic.read(READ_BYTES);
        if (data === null) {
          this.#readEnded = true;
          // Both directions delivered: the peer waits for this side to close the connection.
          if (this.#writeFinished) this.#connection.abort();
          this.push(null);
          return;
        }
        this.#bytesReceived += data.length;
        if (!this.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength))) return;
      }
    } catch (err) {
      this.destroy(quicError(err, "QUIC stream"));
    } finally {
      this.#reading = false;
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#send(chunk).then(() => callback(), callback);
  }

  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    callback: (error?: Error | null) => void,
  ): void {
    void (async () => {
      let gathered: Buffer[] = [];
      let gatheredBytes = 0;
      // A lone chunk (a 2 MiB group of frames, say) goes as it is, never copied.
      const flush = () => {
        const [only] = gathered;
        const data =
          gathered.length === 1 && only !== undefined ? only : Buffer.concat(gathered, gatheredBytes);
        gathered = [];
        gatheredBytes = 0;
        return this.#send(data);
      };
      for (const { chunk } of chunks) {
        if (gatheredBytes + chunk.length > GATHER_BYTES && gathered.length > 0) await flush();
        gathered.push(chunk);
        gatheredBytes += chunk.length;
      }
      if (gathered.length > 0) await flush();
    })().then(() => callback(), callback);
  }

  async #send(data: Buffer): Promise<void> {
    try {
      await this.#quic.write(data);
    } catch (err) {
      throw quicError(err, "QUIC stream");
    }
    this.#bytesSent += data.length;
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.#readEnded) this.#endedFirst = true;
    this.#quic.finishWrite().then(
      () => {
        this.#writeFinished = true;
        callback();
        // The peer's end, read while this end was being finished, answered it: both directions
        // are delivered and the peer waits for this side to close (else both would linger).
        if (this.#readEnded && this.#endedFirst) this.#connection.abort();
        // The peer's end may be waiting behind data no one reads: read on to find it.
        else if (!this.#reading && !this.#readEnded) void this.#pump();
      },
      (err: unknown) => callback(quicError(err, "QUIC stream")),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (error === null && this.#readEnded && this.#writeFinished) {
      const timer = setTimeout(() => this.#connection.abort(), LINGER_MS);
      this.#connection.closed.finally(() => {
        clearTimeout(timer);
        callback(null);
      });
      return;
    }
    this.#connection.abort();
    callback(error);
  }
}
