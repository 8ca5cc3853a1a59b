/**
 * How a pull's data streams are made: a transport stream to the link's host, authenticated as
 * belonging to the pull's control connection (its client id), and nothing more than a
 * HostConnection that fetches chunks. The pool runs them in stream runners (worker threads for
 * TCP, the main thread for QUIC), so what makes them is plain data (DataStreamSpec) that crosses
 * to each as it is; a factory whose streams are not dialed but offered (an upload's, from its
 * pusher: push/offered-streams.ts) runs all of them in the main thread, as itself.
 */
import type { BufferPool } from "../../engine/buffer-pool.js";
import type { TeleportError } from "../../errors.js";
import type { StreamKey } from "../../transport/frame-mac.js";
import type { ShareLink } from "../../transport/link.js";
import { transportFor } from "../../transport/registry.js";
import type { TransportKind, TransportStream } from "../../transport/transport.js";
import { Feature } from "../../wire/messages.js";
import { HostConnection, handshakeTimeoutMs } from "../host-connection.js";
import type { RoutedSockets, RoutedStreamsSpec } from "./routed-streams.js";

export interface DataStreamSpec {
  link: ShareLink;
  /** The control connection's Hello.clientId: the host counts the streams as that client's. */
  clientId: Buffer;
  /** The transport the streams start on: the one the control connection got through on. */
  transport: TransportKind;
  /**
   * The other transport, when the streams may move to it (`--transport auto`, and the host
   * listens on both): it is tried during the pull and used if it delivers more (transport-trial.ts).
   */
  alternative?: TransportKind | undefined;
  /** False for plaintext streams (`pull --no-encryption`, which the host has agreed to). */
  encrypted: boolean;
  /**
   * Plaintext streams to a host that authenticates their requests (Feature.FRAME_MAC): the
   * control connection's key, under which every request is MAC'd.
   */
  streamKey?: StreamKey | undefined;
  /** Each stream's idle timeout: how long a silent host is waited for. */
  idleTimeoutMs?: number | undefined;
  /**
   * The features the host granted the control connection: a stream's requests sent ahead of its
   * WELCOME rely on them (compression asked for in its first GET_CHUNKS).
   */
  hostFeatures?: number | undefined;
}

/** What a data stream is opened with, on the thread that runs it. */
export interface DataStreamOptions {
  /** Where received chunk buffers come from: the thread's, shared by its streams. */
  pool?: BufferPool;
  /** Closing while still connecting cancels the connect. */
  signal?: AbortSignal;
  /** Told once when the stream ends, whatever ended it. */
  onClose?: (error: TeleportError) => void;
  /**
   * Resolve once HELLO is sent, not answered: the first GET_CHUNKS follows it on the wire, a
   * round trip sooner (HostConnection.greet); a refusal then reaches `onClose`.
   */
  pipelined?: boolean;
  /** TCP: the route sent ahead of the TLS handshake (an upload's data stream: its token). */
  route?: Buffer | undefined;
}

/**
 * The transport a pull's data streams start on: the one its control connection got through on,
 * so a pull that reached its host through a relay (transport/relay.ts) stays on the relay, and
 * one that reached it directly never touches a relay. The seam for a better path found during
 * the pull (a punched one): it says here which transport the pool's new streams use.
 */
export function streamTransport(spec: DataStreamSpec): TransportKind {
  return spec.transport;
}

export class DataStreamFactory {
  readonly spec: DataStreamSpec;
  /**
   * Where QUIC streams go once a hole is punched (reach/client-punch.ts): the host's public
   * address as its NAT maps its QUIC socket, the link's fingerprint still pinned. QUIC streams run
   * in the main thread, on this very factory, so setting it there is enough.
   */
  #punchedLink: ShareLink | undefined;

  constructor(spec: DataStreamSpec) {
    this.spec = spec;
  }

  /**
   * Whether its streams run in the thread that made it, whatever their transport: a factory
   * whose streams are offered to it (push/offered-streams.ts) holds what cannot cross to a worker.
   */
  get inMainThread(): boolean {
    return false;
  }

  /**
   * Where its streams come from when they are routed to the thread that runs them (an upload's:
   * client/pool/routed-streams.ts), which the pool then runs in worker threads; undefined for
   * streams the thread dials itself.
   */
  get routed(): { spec: RoutedStreamsSpec; sockets: RoutedSockets } | undefined {
    return undefined;
  }

  /** The factory `spec` describes, after a structured clone turned its Buffers into Uint8Arrays. */
  static revive(spec: DataStreamSpec): DataStreamFactory {
    return new DataStreamFactory(DataStreamFactory.reviveSpec(spec));
  }

  /** `spec` after a structured clone, its Buffers made Buffers again. */
  static reviveSpec(spec: DataStreamSpec): DataStreamSpec {
    const { link } = spec;
    return {
      ...spec,
      link: { ...link, fingerprint: asBuffer(link.fingerprint), secret: asBuffer(link.secret) },
      clientId: asBuffer(spec.clientId),
      streamKey: spec.streamKey && {
        key: asBuffer(spec.streamKey.key),
        keyId: asBuffer(spec.streamKey.keyId),
      },
    };
  }

  /** From now on, QUIC streams go to `link` (the host's punched address). */
  usePunchedPath(link: ShareLink): void {
    this.#punchedLink = link;
  }

  /** Opens a data stream over `transport`, once the host has welcomed it (or, `pipelined`, greeted). */
  async open(transport: TransportKind, options: DataStreamOptions = {}): Promise<HostConnection> {
    const { encrypted, idleTimeoutMs } = this.spec;
    const link = (transport === "quic" ? this.#punchedLink : undefined) ?? this.spec.link;
    const stream = await transportFor(transport, { encrypted }).dial(link, {
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      timeoutMs: handshakeTimeoutMs({ idleTimeoutMs }),
      route: options.route,
    });
    return this.connectOver(stream, options);
  }

  /** Says HELLO over `stream`, as a data stream of the spec's client. */
  protected async connectOver(stream: TransportStream, options: DataStreamOptions): Promise<HostConnection> {
    const { link, clientId, encrypted, idleTimeoutMs, streamKey, hostFeatures } = this.spec;
    const { pipelined, route: _, ...helloOptions } = options;
    const hello = {
      secret: link.secret,
      clientId,
      clientName: "teleport-stream",
      features: encrypted ? 0 : Feature.PLAINTEXT,
      streamKey: encrypted ? undefined : streamKey,
      idleTimeoutMs,
      assumedFeatures: hostFeatures,
      ...helloOptions,
    };
    if (pipelined === true) {
      const connection = HostConnection.greet(stream, hello);
      connection.welcomed.catch(() => stream.stream.destroy());
      return connection;
    }
    try {
      return await HostConnection.open(stream, hello);
    } catch (err) {
      stream.stream.destroy();
      throw err;
    }
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
