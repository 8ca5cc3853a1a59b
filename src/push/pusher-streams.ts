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
export const MAX_OFFERED_STREAMS = 64;

/**
 * Where a pusher serves the data streams its host asks for: in the main thread (PusherStreams),
 * or in its stream threads (pusher-threads.ts), each of which runs a PusherStreams of its own.
 */
export interface UploadStreams {
  /**
   * The host wants a stream that gives `token` back. Asked past the bound, or once the upload
   * has ended, it is not dialed: the host's wait for it times out, and its pull goes on with the
   * streams it has.
   */
  offer(token: Buffer): void;
  /** Bytes sent on the data streams so far. */
  readonly bytesSent: number;
  /** Streams handed over and served (those that were dialed and refused are not counted). */
  readonly served: number;
  /** The upload has ended: no more streams, and those still open are ended; resolves once they have. */
  close(): Promise<void>;
}

export class PusherStreams implements UploadStreams {
  /** Dials the host as the control connection's client (TeleportClient.dataStreams, taken before the handover). */
  readonly #factory: DataStreamFactory;
  /** Serves SRC on a stream handed over. */
  readonly #serve: (stream: TransportStream) => HostSession;
  /** Told as each offered stream ends, whether it was served or never came to be. */
  readonly #onEnded: ((served: boolean) => void) | undefined;
  /** Streams served, and each one's bytes sent once it has closed. */
  readonly #sessions = new Map<HostSession, TransportStream>();
  #closedBytesSent = 0;
  /** Each offered stream's life, dialed and then served, until it ends. */
  readonly #running = new Set<Promise<void>>();
  #served = 0;
  readonly #stop = new AbortController();
  #closing: Promise<void> | undefined;

  constructor(
    factory: DataStreamFactory,
    serve: (stream: TransportStream) => HostSession,
    onEnded?: (served: boolean) => void,
  ) {
    this.#factory = factory;
    this.#serve = serve;
    this.#onEnded = onEnded;
    // One listener per stream being dialed.
    setMaxListeners(MAX_OFFERED_STREAMS + 1, this.#stop.signal);
  }

  get bytesSent(): number {
    let bytes = this.#closedBytesSent;
    for (const stream of this.#sessions.values()) bytes += stream.stats().bytesSent;
    return bytes;
  }

  get served(): number {
    return this.#served;
  }

  offer(token: Buffer): void {
    if (this.#stop.signal.aborted || this.#running.size >= MAX_OFFERED_STREAMS) return;
    // A copy: the frame's body may be a view into a read buffer that is reused.
    const running = this.#run(Buffer.from(token)).then((served) => {
      this.#running.delete(running);
      this.#onEnded?.(served);
    });
    this.#running.add(running);
  }

  /** Dials, offers and serves one stream until it closes; whether it was served. Never rejects. */
  async #run(token: Buffer): Promise<boolean> {
    const stream = await this.#dial(token);
    if (stream === undefined) return false; // the host's pull replaces a stream that never came
    if (this.#stop.signal.aborted) {
      stream.stream.destroy();
      return false;
    }
    const session = this.#serve(stream);
    this.#served++;
    this.#sessions.set(session, stream);
    await session.closed;
    this.#closedBytesSent += stream.stats().bytesSent;
    this.#sessions.delete(session);
    return true;
  }

  async #dial(token: Buffer): Promise<TransportStream | undefined> {
    const { signal } = this.#stop;
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
      return await offerStream(connection, token);
    } catch {
      return undefined;
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stop.abort();
      for (const session of this.#sessions.keys()) session.destroy();
      await Promise.all(this.#running);
    })();
    return this.#closing;
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
