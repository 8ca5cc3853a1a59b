/**
 * An authenticated connection to a host over one transport stream: HELLO answered by WELCOME,
 * keep-alive pings, and chunk fetches, each chunk checked against its hash. A TeleportClient is
 * one with the control requests on top (listings, manifests, ranges); each of a pull's data
 * streams is one and nothing more (pool/data-streams.ts).
 */
import { hashBytes, hashEquals } from "../chunking/hash.js";
import { Decompressor } from "../compression/zstd.js";
import { BufferPool } from "../engine/buffer-pool.js";
import { ErrorCode, TeleportError } from "../errors.js";
import { FrameMac, type StreamKey } from "../transport/frame-mac.js";
import { quicAvailable } from "../transport/quic.js";
import { authProof, HANDSHAKE_TIMEOUT_MS, type TransportStream } from "../transport/transport.js";
import {
  CHUNK_DATA_HEADER_SIZE,
  type ChunkRequest,
  emptyCodec,
  Feature,
  getChunksRequestCodec,
  helloCodec,
  Messages,
  MessageType,
  MIN_PROTOCOL_VERSION,
  PROTOCOL_MAGIC,
  PROTOCOL_VERSION,
  pingCodec,
  type Welcome,
} from "../wire/messages.js";
import { MessageHandlers } from "../wire/registry.js";
import { hostError, type PendingRequest, RequestChannel } from "./channel.js";

/** Keep-alive pings: a third of the idle timeout, so that a live host is never idle. */
const PING_INTERVAL_MS = 10_000;

export interface FetchOptions {
  signal?: AbortSignal;
  /** zstd level to ask the host for (0: none); ignored unless the host compresses. */
  compressLevel?: number;
}

export interface HelloOptions {
  /** The link's secret, proven over the stream's session binding. */
  secret: Buffer;
  /** Hello.clientId: a pull's data streams give their control connection's. */
  clientId: Buffer;
  clientName: string;
  /** Features asked for beyond those every client asks for (Feature.XATTRS, Feature.PLAINTEXT). */
  features: number;
  /**
   * What requests sent before WELCOME may rely on (HostConnection.greet): a data stream's
   * control connection's granted features, as the same host grants the same offer alike.
   */
  assumedFeatures?: number | undefined;
  /**
   * A plaintext data stream's control connection's key (host granted Feature.FRAME_MAC there):
   * every frame sent is MAC'd under it (transport/frame-mac.ts).
   */
  streamKey?: StreamKey | undefined;
  idleTimeoutMs?: number | undefined;
  /** Where received chunk buffers come from; a pool of its own when unset. */
  pool?: BufferPool | undefined;
  signal?: AbortSignal | undefined;
  /** Told once when the connection ends, whatever ended it. */
  onClose?: ((error: TeleportError) => void) | undefined;
}

/** How long connecting may take: the handshake timeout, or a shorter idle timeout. */
export function handshakeTimeoutMs(options: { idleTimeoutMs?: number | undefined }): number {
  return Math.min(HANDSHAKE_TIMEOUT_MS, options.idleTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
}

export class HostConnection {
  readonly stream: TransportStream;
  readonly pool: BufferPool;
  readonly clientId: Buffer;
  #control!: RequestChannel;
  readonly #onCloseHook: ((error: TeleportError) => void) | undefined;
  #closing = false;
  /** Told when the connection is lost (see onLost). */
  readonly #lostListeners = new Set<(error: TeleportError) => void>();
  #welcome: Welcome | undefined;
  #offeredFeatures = 0;
  readonly #assumedFeatures: number;
  /** Made on the first compressed chunk: most pulls never see one. */
  #decompressor: Decompressor | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #onWelcome: ((error?: TeleportError) => void) | undefined;
  /** Settles once the host has answered HELLO: WELCOME, or the error that ended the connection. */
  readonly welcomed: Promise<void>;
  /** Pings waiting for their PONG, by the send time they carry. */
  readonly #pings = new Map<number, { resolve(ms: number): void; reject(error: TeleportError): void }>();

  private constructor(stream: TransportStream, options: HelloOptions) {
    this.stream = stream;
    this.pool = options.pool ?? new BufferPool();
    this.clientId = options.clientId;
    this.#onCloseHook = options.onClose;
    this.#assumedFeatures = options.assumedFeatures ?? 0;
    this.welcomed = this.#start(options);
    this.welcomed.catch(() => {}); // told through onClose too, where nobody awaits it
  }

  /** Says HELLO over `stream` and resolves once the host has answered WELCOME. */
  static async open(stream: TransportStream, options: HelloOptions): Promise<HostConnection> {
    const connection = new HostConnection(stream, options);
    await connection.welcomed;
    return connection;
  }

  /**
   * Says HELLO over `stream` and returns at once: requests made before WELCOME follow HELLO on
   * the wire and the host takes them once HELLO checks out, a round trip sooner (a refused HELLO
   * ends the connection, and them with it). Until WELCOME the features are those assumed
   * (HelloOptions.assumedFeatures). `welcomed` settles with the handshake; a failure also
   * reaches `onClose`.
   */
  static greet(stream: TransportStream, options: HelloOptions): HostConnection {
    return new HostConnection(stream, options);
  }

  /** The channel requests are made on. */
  get channel(): RequestChannel {
    return this.#control;
  }

  /** Whether the host granted `feature` in its WELCOME. */
  hasFeature(feature: number): boolean {
    return (this.features & feature) !== 0;
  }

  /** The features the host granted (until WELCOME: those assumed, of those offered). */
  get features(): number {
    return this.#welcome?.features ?? this.#assumedFeatures & this.#offeredFeatures;
  }

  get shareName(): string {
    return this.#welcome?.shareName ?? "";
  }

  /** Whether the host shares one file (`host FILE`; Welcome.oneFile). */
  get sharesOneFile(): boolean {
    return this.#welcome?.oneFile === 1;
  }

  /**
   * Calls `listener` with the reason if the connection to the host is lost (not when closed).
   * Returns the function that stops listening.
   */
  onLost(listener: (error: TeleportError) => void): () => void {
    this.#lostListeners.add(listener);
    return () => this.#lostListeners.delete(listener);
  }

  async #start(options: HelloOptions): Promise<void> {
    const { streamKey } = options;
    const frameMac = streamKey && new FrameMac(streamKey, this.stream.sessionBinding());
    this.#control = new RequestChannel(
      this.stream.stream,
      this.pool,
      {
        onConnectionFrame: (type, body) => this.#onConnectionFrame(type, body),
        onClose: (error) => this.#onClose(error),
      },
      {
        ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
        ...(frameMac === undefined ? {} : { sealFrame: (frame: Buffer) => frameMac.seal(frame) }),
        steerReads: this.stream.steerReads,
      },
    );
    const welcomed = new Promise<void>((resolve, reject) => {
      this.#onWelcome = (error) => (error === undefined ? resolve() : reject(error));
    });
    const timer = setTimeout(
      () => this.#control.destroy(new TeleportError(ErrorCode.TIMEOUT, "host did not answer HELLO in time")),
      handshakeTimeoutMs(options),
    );
    const cancel = () => this.#control.destroy(new TeleportError(ErrorCode.CANCELLED, "connect cancelled"));
    options.signal?.addEventListener("abort", cancel, { once: true });
    this.#offeredFeatures =
      Feature.ENTRY_ERRORS |
      Feature.SKIPPED_ENTRIES |
      Feature.FILTERS |
      Feature.COMPRESSION |
      Feature.HARD_LINKS |
      Feature.FRAME_MAC |
      Feature.HOST_BUSY |
      options.features |
      (quicAvailable ? Feature.BOTH_TRANSPORTS : 0);
    this.#control.connection.send(MessageType.HELLO, 0, helloCodec, {
      magic: PROTOCOL_MAGIC,
      minVersion: MIN_PROTOCOL_VERSION,
      maxVersion: PROTOCOL_VERSION,
      features: this.#offeredFeatures,
      authProof: authProof(this.stream, options.secret),
      clientName: options.clientName,
      clientId: this.clientId,
      streamKeyId: streamKey?.keyId,
    });
    try {
      await welcomed;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", cancel);
    }
    this.#pingTimer = setInterval(
      () => {
        this.#control.connection.send(MessageType.PING, 0, pingCodec, { sentAt: Date.now() });
      },
      Math.min(PING_INTERVAL_MS, this.#control.connection.idleTimeoutMs / 3),
    ).unref();
  }

  /** What the client does with each frame the host sends outside a request (request id 0). */
  static readonly #connectionFrames = new MessageHandlers<HostConnection>("client")
    .on(Messages.WELCOME, (connection, _requestId, welcome) => {
      if (connection.#welcome !== undefined) throw new TeleportError(ErrorCode.PROTOCOL, "second WELCOME");
      if (welcome.version < MIN_PROTOCOL_VERSION || welcome.version > PROTOCOL_VERSION) {
        throw new TeleportError(
          ErrorCode.VERSION,
          `the host answered in protocol version ${welcome.version}; this teleport speaks ${MIN_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}`,
        );
      }
      // A feature the client did not offer is not granted, whatever the host says.
      connection.#welcome = { ...welcome, features: welcome.features & connection.#offeredFeatures };
      connection.#onWelcome?.();
    })
    .on(Messages.ERROR, (connection, _requestId, error) => connection.#control.destroy(hostError(error)))
    .on(Messages.PONG, (connection, _requestId, { sentAt }) => {
      const ping = connection.#pings.get(sentAt);
      connection.#pings.delete(sentAt);
      ping?.resolve(performance.now() - sentAt);
    });

  #onConnectionFrame(type: number, body: Buffer): void {
    if (!HostConnection.#connectionFrames.dispatch(this, type, 0, body)) {
      throw new TeleportError(ErrorCode.PROTOCOL, `unexpected connection frame of type ${type}`);
    }
  }

  #onClose(error: TeleportError): void {
    clearInterval(this.#pingTimer);
    if (!this.#closing) for (const listener of this.#lostListeners) listener(error);
    this.#onWelcome?.(error);
    for (const ping of this.#pings.values()) ping.reject(error);
    this.#pings.clear();
    this.#onCloseHook?.(error);
  }

  /** Round-trip time to the host in milliseconds, over the connection's own queue. */
  ping(): Promise<number> {
    if (this.#control.connection.destroyed)
      return Promise.reject(
        this.#control.connection.error ?? new TeleportError(ErrorCode.CONNECTION, "connection closed"),
      );
    let sentAt = performance.now();
    while (this.#pings.has(sentAt)) sentAt += 1e-6;
    return new Promise<number>((resolve, reject) => {
      this.#pings.set(sentAt, { resolve, reject });
      this.#control.connection.send(MessageType.PING, 0, pingCodec, { sentAt });
    });
  }

  /**
   * Fetches chunks by hash. Each chunk is checked against its requested hash and size before
   * `onChunk` sees it (compressed ones once decompressed); `onChunk` then owns `data` and must
   * give it back with `pool.release`. `wireBytes` is what the chunk took on the wire.
   */
  fetchChunks<R extends ChunkRequest>(
    chunks: R[],
    onChunk: (request: R, data: Buffer, wireBytes: number) => void,
    options: FetchOptions = {},
  ): Promise<void> {
    const compressLevel = this.hasFeature(Feature.COMPRESSION) ? (options.compressLevel ?? 0) : 0;
    return new Promise((resolve, reject) => {
      let next = 0;
      let credit = 0;
      for (const chunk of chunks) credit += CHUNK_DATA_HEADER_SIZE + chunk.size;
      const pending: PendingRequest = {
        credit,
        onFrame: (type, body) => {
          const request = chunks[next++];
          if (request === undefined || (type !== MessageType.CHUNK_DATA && type !== MessageType.CHUNK_ZSTD))
            throw unexpected(type, "GET_CHUNKS");
          const compressed = type === MessageType.CHUNK_ZSTD;
          if (compressed && compressLevel === 0)
            throw new TeleportError(ErrorCode.PROTOCOL, "compressed chunk not asked for");
          const data = this.#verified(request, body.subarray(CHUNK_DATA_HEADER_SIZE), compressed);
          onChunk(request, data, body.length);
          return !compressed; // a compressed body is done with: the channel gives it back
        },
        onEnd: () =>
          next === chunks.length
            ? resolve()
            : reject(new TeleportError(ErrorCode.PROTOCOL, "host skipped chunks")),
        onError: reject,
      };
      try {
        const request = compressLevel > 0 ? { chunks, compressLevel } : { chunks };
        this.#control.open(MessageType.GET_CHUNKS, getChunksRequestCodec, request, pending, options.signal);
      } catch (err) {
        reject(err);
      }
    });
  }

  /**
   * A chunk's bytes, decompressed into a pooled buffer if they came compressed, once checked
   * against the hash and size asked for.
   */
  #verified(request: ChunkRequest, payload: Buffer, compressed: boolean): Buffer {
    let data = payload;
    if (compressed) {
      data = this.pool.acquire(request.size);
      try {
        this.#decompressor ??= new Decompressor();
        this.#decompressor.decompressExactly(data, payload);
      } catch (err) {
        this.pool.release(data);
        throw err;
      }
    }
    if (data.length !== request.size || !hashEquals(hashBytes(data), request.hash)) {
      if (compressed) this.pool.release(data);
      throw new TeleportError(
        ErrorCode.CHUNK_CORRUPT,
        `chunk at offset ${request.offset} of "${request.path}" does not match its BLAKE3 hash`,
      );
    }
    return data;
  }

  close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#pingTimer);
    return this.#control.close();
  }

  /** Stops the keep-alive pings: an upload's swap of roles must find no PONG on its way. */
  stopPings(): void {
    clearInterval(this.#pingTimer);
  }

  /**
   * Sends UPLOAD_SWITCH, its last frame as the client, and hands the stream over to whatever
   * serves on it next (Connection.release): this connection is done with, and never closes it.
   */
  handOver(): TransportStream {
    this.#closing = true;
    clearInterval(this.#pingTimer);
    const { connection } = this.#control;
    connection.send(MessageType.UPLOAD_SWITCH, 0, emptyCodec, {});
    connection.release();
    this.stream.steerReads?.(() => undefined);
    return this.stream;
  }

  destroy(error?: TeleportError): void {
    this.#control.destroy(error);
  }
}

export function unexpected(type: number, request: string): TeleportError {
  return new TeleportError(ErrorCode.PROTOCOL, `unexpected frame type ${type} in answer to ${request}`);
}
