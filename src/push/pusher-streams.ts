/**
 * The pusher's side of the data streams of an upload (push/offered-streams.ts has the host's):
 * asked for one on the control connection (UPLOAD_STREAM_WANTED), the pusher dials the host as
 * a pull's data stream does (the write secret proved in HELLO, its control connection's client
 * id), gives the token back (UPLOAD_STREAM), and once the host has taken it, swaps roles on it:
 * it serves SRC on that stream as on the control connection.
 */
import { setMaxListeners } from "node:events";
import { type HostConnection, unexpected } from "../client/host-connection.js";
import type { DataStreamFactory } from "../client/pool/data-streams.js";
import type { HostSession } from "../host/session.js";
import type { TransportStream } from "../transport/transport.js";
import { Feature, MessageType, uploadStreamCodec } from "../wire/messages.js";

/** Streams dialed or served at once: as many as a host lets one upload wait for (offered-streams.ts). */
const MAX_OFFERED_STREAMS = 64;

export class PusherStreams {
  /** Dials the host as the control connection's client (TeleportClient.dataStreams, taken before the handover). */
  readonly #factory: DataStreamFactory;
  /** Serves SRC on a stream handed over. */
  readonly #serve: (stream: TransportStream) => HostSession;
  /** Streams served, and each one's bytes sent once it has closed. */
  readonly #sessions = new Map<HostSession, TransportStream>();
  #closedBytesSent = 0;
  readonly #stop = new AbortController();
  #dialing = 0;

  constructor(factory: DataStreamFactory, serve: (stream: TransportStream) => HostSession) {
    this.#factory = factory;
    this.#serve = serve;
    // One listener per stream being dialed.
    setMaxListeners(MAX_OFFERED_STREAMS + 1, this.#stop.signal);
  }

  /** Bytes sent on the data streams so far. */
  get bytesSent(): number {
    let bytes = this.#closedBytesSent;
    for (const stream of this.#sessions.values()) bytes += stream.stats().bytesSent;
    return bytes;
  }

  /**
   * The host wants a stream that gives `token` back. Asked past the bound, or once the upload
   * has ended, it is not dialed: the host's wait for it times out, and its pull goes on with the
   * streams it has.
   */
  offer(token: Buffer): void {
    if (this.#stop.signal.aborted || this.#dialing + this.#sessions.size >= MAX_OFFERED_STREAMS) return;
    this.#dialing++;
    // A copy: the frame's body may be a view into a read buffer that is reused.
    void this.#dial(Buffer.from(token)).finally(() => this.#dialing--);
  }

  async #dial(token: Buffer): Promise<void> {
    const { signal } = this.#stop;
    let stream: TransportStream;
    try {
      // UPLOAD_STREAM follows HELLO on the wire, a round trip sooner; a refused HELLO ends both.
      const { transport, hostFeatures = 0 } = this.#factory.spec;
      // The token goes ahead as a route too, to a host that hands the stream to its pull's thread.
      const routed = transport === "tcp" && (hostFeatures & Feature.ROUTED_STREAMS) !== 0;
      const connection = await this.#factory.open(transport, {
        signal,
        pipelined: true,
        route: routed ? token : undefined,
      });
      stream = await offerStream(connection, token);
    } catch {
      return; // the host's pull replaces a stream that never came
    }
    if (signal.aborted) {
      stream.stream.destroy();
      return;
    }
    const session = this.#serve(stream);
    this.#sessions.set(session, stream);
    void session.closed.then(() => {
      this.#closedBytesSent += stream.stats().bytesSent;
      this.#sessions.delete(session);
    });
  }

  /** The upload has ended: no more streams, and those still open are ended. */
  close(): void {
    this.#stop.abort();
    for (const session of this.#sessions.keys()) session.destroy();
  }
}

/**
 * Gives `token` back to the host over `connection`, a data stream dialed as the upload's client
 * (UPLOAD_STREAM), and once the host has taken it (END), hands the stream over (UPLOAD_SWITCH):
 * the pusher serves on it next. A refusal ends the connection.
 */
export async function offerStream(connection: HostConnection, token: Buffer): Promise<TransportStream> {
  try {
    connection.stopPings();
    for await (const frame of connection.channel.stream(MessageType.UPLOAD_STREAM, uploadStreamCodec, {
      token,
    })) {
      throw unexpected(frame.type, "UPLOAD_STREAM");
    }
  } catch (err) {
    connection.destroy();
    throw err;
  }
  return connection.handOver();
}
