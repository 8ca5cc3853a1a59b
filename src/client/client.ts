/**
 * A connection to a teleport host: connects over TLS, checks the pinned certificate, proves the
 * link's secret, and then runs requests concurrently over the one connection. Every response
 * frame is checked against the request it answers: its credit, its order, and for data its hash.
 */
import { randomBytes } from "node:crypto";
import { hashBytes, hashEquals } from "../chunking/hash.js";
import { Decompressor } from "../compression/zstd.js";
import { BufferPool } from "../engine/buffer-pool.js";
import { ErrorCode, TeleportError } from "../errors.js";
import { parseLink, type ShareLink } from "../transport/link.js";
import { plainTransport } from "../transport/plain.js";
import { quicAvailable } from "../transport/quic.js";
import { dialChoice, type TransportChoice } from "../transport/select.js";
import { HANDSHAKE_TIMEOUT_MS } from "../transport/tcp.js";
import { authProof, type TransportKind, type TransportStream } from "../transport/transport.js";
import { decodeMessage } from "../wire/codec.js";
import {
  CHUNK_DATA_HEADER_SIZE,
  type ChunkRef,
  type ChunkRequest,
  CLIENT_ID_SIZE,
  chunksCodec,
  type Entry,
  type EntryError,
  entriesCodec,
  entryErrorCodec,
  Feature,
  type FileBegin,
  type FileEnd,
  fileBeginCodec,
  fileEndCodec,
  getChunksRequestCodec,
  helloCodec,
  listRequestCodec,
  MessageType,
  MIN_PROTOCOL_VERSION,
  manifestRequestCodec,
  PROTOCOL_MAGIC,
  PROTOCOL_VERSION,
  pingCodec,
  RANGE_DATA_HEADER_SIZE,
  rangeDataHeaderCodec,
  readRangeRequestCodec,
  statRequestCodec,
  type Welcome,
  welcomeCodec,
} from "../wire/messages.js";
import { type PendingRequest, RequestChannel, remoteError, STREAM_WINDOW_BYTES } from "./channel.js";

/**
 * How far a manifest runs ahead of the pull reading it: ~850 small files, 215 MB of large files'
 * chunk lists, more than a round trip's worth of either at 1 Gbit/s and 50 ms. The host keeps
 * the bytes of the small files it lists for the GET_CHUNKS that follow (host/recent-chunks.ts);
 * with 1 MiB, 7,676 of 20,000 10 KB files had left its 32 MiB before they were asked for, and
 * were opened and read a second time.
 */
const MANIFEST_WINDOW_BYTES = 128 * 1024;

export interface FetchOptions {
  signal?: AbortSignal;
  /** zstd level to ask the host for (0: none); ignored unless the host compresses. */
  compressLevel?: number;
}

export interface ConnectOptions {
  signal?: AbortSignal;
  clientName?: string;
  /** Hello.clientId: random unless given (a stream of a pool gives its client's). */
  clientId?: Buffer;
  idleTimeoutMs?: number;
  /** Where received chunk buffers come from; a pool of its own when unset. */
  pool?: BufferPool;
  /** Told once when the connection ends, whatever ended it. */
  onClose?: (error: TeleportError) => void;
  /** How to reach the host (default `auto`: see dialChoice). */
  transport?: TransportChoice;
  /** Told of choices made for the caller (QUIC used because TCP did not get through). */
  onNotice?: (message: string) => void;
  /** Ask for files' extended attributes (Feature.XATTRS, `pull --xattrs`). */
  xattrs?: boolean;
  /** Ask the host to take plaintext data streams (Feature.PLAINTEXT, `pull --no-encryption`). */
  askPlaintext?: boolean;
  /**
   * Connect without TLS (transport/plain.ts): for a data stream, once the host has agreed to
   * plaintext ones. Such a connection fetches chunks and nothing else.
   */
  plaintext?: boolean;
}

/** One event of a streamed manifest, in the order the host walks the tree. */
export type ManifestEvent =
  | { kind: "entries"; entries: Entry[] }
  | { kind: "file-begin"; entry: FileBegin }
  | { kind: "chunks"; chunks: ChunkRef[] }
  | { kind: "file-end"; digest: FileEnd }
  | { kind: "entry-error"; failure: EntryError };

/** Keep-alive pings: a third of the idle timeout, so that a live host is never idle. */
const PING_INTERVAL_MS = 10_000;

/** How long connecting may take: the handshake timeout, or a shorter idle timeout. */
function handshakeTimeoutMs(options: ConnectOptions): number {
  return Math.min(HANDSHAKE_TIMEOUT_MS, options.idleTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
}

export class TeleportClient {
  readonly link: ShareLink;
  readonly pool: BufferPool;
  #control!: RequestChannel;
  #onCloseHook: ((error: TeleportError) => void) | undefined;
  #closing = false;
  /** Told when the connection is lost (see onLost). */
  readonly #lostListeners = new Set<(error: TeleportError) => void>();
  #welcome: Welcome | undefined;
  #stream: TransportStream | undefined;
  /** Made on the first compressed chunk: most pulls never see one. */
  #decompressor: Decompressor | undefined;
  readonly clientId: Buffer;
  #pingTimer: NodeJS.Timeout | undefined;
  #onWelcome: ((error?: TeleportError) => void) | undefined;
  #choice: TransportChoice = "auto";
  /** Pings waiting for their PONG, by the send time they carry. */
  readonly #pings = new Map<number, { resolve(ms: number): void; reject(error: TeleportError): void }>();

  private constructor(link: ShareLink, options: ConnectOptions) {
    this.link = link;
    this.pool = options.pool ?? new BufferPool();
    this.#onCloseHook = options.onClose;
    this.clientId = options.clientId ?? randomBytes(CLIENT_ID_SIZE);
  }

  static async connect(link: string | ShareLink, options: ConnectOptions = {}): Promise<TeleportClient> {
    const parsed = typeof link === "string" ? parseLink(link) : link;
    const client = new TeleportClient(parsed, options);
    const signal = options.signal === undefined ? {} : { signal: options.signal };
    const timeoutMs = handshakeTimeoutMs(options);
    const stream =
      options.plaintext === true
        ? await plainTransport.dial(parsed, { ...signal, timeoutMs })
        : await dialChoice(parsed, options.transport ?? "auto", {
            ...signal,
            ...(options.onNotice === undefined ? {} : { onNotice: options.onNotice }),
            timeoutMs,
          });
    client.#stream = stream;
    client.#choice = options.transport ?? "auto";
    await client.#start(stream, options);
    return client;
  }

  /**
   * Calls `listener` with the reason if the connection to the host is lost (not when closed):
   * pinged at a third of the idle timeout, it is a pull's word on whether the host is still
   * there. Returns the function that stops listening.
   */
  onLost(listener: (error: TeleportError) => void): () => void {
    this.#lostListeners.add(listener);
    return () => this.#lostListeners.delete(listener);
  }

  /** The transport the connection got through on. */
  get transport(): TransportKind {
    return this.#stream?.transport ?? "tcp";
  }

  /**
   * The round trip the transport measured (TCP: its handshake, answered by the host's kernel,
   * so unlike a ping not delayed by a host too busy to run its event loop).
   */
  get transportRttMs(): number {
    return this.#stream?.stats().rttMs ?? Number.POSITIVE_INFINITY;
  }

  /**
   * The transport the data streams may move to during a pull: under `auto`, when the host takes
   * both (Feature.BOTH_TRANSPORTS) and this machine has the QUIC binding.
   */
  get alternativeTransport(): TransportKind | undefined {
    const both = ((this.#welcome?.features ?? 0) & Feature.BOTH_TRANSPORTS) !== 0;
    if (this.#choice !== "auto" || !both || !quicAvailable) return undefined;
    return this.transport === "tcp" ? "quic" : "tcp";
  }

  /** Whether the host sends files' extended attributes (Feature.XATTRS, when asked). */
  get hostSendsXattrs(): boolean {
    return ((this.#welcome?.features ?? 0) & Feature.XATTRS) !== 0;
  }

  /** Whether the host takes plaintext data streams (Feature.PLAINTEXT, when asked). */
  get hostTakesPlaintext(): boolean {
    return ((this.#welcome?.features ?? 0) & Feature.PLAINTEXT) !== 0;
  }

  /** Whether the host sends compressed chunks when asked (Feature.COMPRESSION). */
  get hostCompresses(): boolean {
    return ((this.#welcome?.features ?? 0) & Feature.COMPRESSION) !== 0;
  }

  get shareName(): string {
    return this.#welcome?.shareName ?? "";
  }

  async #start(stream: TransportStream, options: ConnectOptions): Promise<void> {
    this.#control = new RequestChannel(
      stream.stream,
      this.pool,
      {
        onConnectionFrame: (type, body) => this.#onConnectionFrame(type, body),
        onClose: (error) => this.#onClose(error),
      },
      options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs },
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
    this.#control.connection.send(MessageType.HELLO, 0, helloCodec, {
      magic: PROTOCOL_MAGIC,
      minVersion: MIN_PROTOCOL_VERSION,
      maxVersion: PROTOCOL_VERSION,
      features:
        Feature.ENTRY_ERRORS |
        Feature.COMPRESSION |
        Feature.HARD_LINKS |
        (options.xattrs === true ? Feature.XATTRS : 0) |
        (options.askPlaintext === true || options.plaintext === true ? Feature.PLAINTEXT : 0) |
        (quicAvailable ? Feature.BOTH_TRANSPORTS : 0),
      authProof: authProof(stream, this.link.secret),
      clientName: options.clientName ?? "teleport",
      clientId: this.clientId,
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

  #onConnectionFrame(type: number, body: Buffer): void {
    switch (type) {
      case MessageType.WELCOME: {
        if (this.#welcome !== undefined) throw new TeleportError(ErrorCode.PROTOCOL, "second WELCOME");
        this.#welcome = decodeMessage(welcomeCodec, body);
        this.#onWelcome?.();
        return;
      }
      case MessageType.ERROR:
        this.#control.destroy(remoteError(body));
        return;
      case MessageType.PONG: {
        const { sentAt } = decodeMessage(pingCodec, body);
        const ping = this.#pings.get(sentAt);
        this.#pings.delete(sentAt);
        ping?.resolve(performance.now() - sentAt);
        return;
      }
      default:
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

  async *list(
    path: string,
    options: { recursive?: boolean; signal?: AbortSignal } = {},
  ): AsyncGenerator<Entry> {
    const request = { credit: STREAM_WINDOW_BYTES, path, recursive: options.recursive ? 1 : 0 };
    for await (const frame of this.#control.stream(
      MessageType.LIST,
      listRequestCodec,
      request,
      options.signal,
    )) {
      if (frame.type !== MessageType.ENTRIES) throw unexpected(frame.type, "LIST");
      yield* decodeMessage(entriesCodec, frame.body).entries;
    }
  }

  async stat(path: string, signal?: AbortSignal): Promise<Entry> {
    for await (const frame of this.#control.stream(MessageType.STAT, statRequestCodec, { path }, signal)) {
      if (frame.type !== MessageType.ENTRIES) throw unexpected(frame.type, "STAT");
      const [entry] = decodeMessage(entriesCodec, frame.body).entries;
      if (entry !== undefined) return entry;
    }
    throw new TeleportError(ErrorCode.PROTOCOL, "STAT answered with no entry");
  }

  async *manifest(path: string, signal?: AbortSignal): AsyncGenerator<ManifestEvent> {
    const request = { credit: MANIFEST_WINDOW_BYTES, path };
    for await (const frame of this.#control.stream(
      MessageType.MANIFEST,
      manifestRequestCodec,
      request,
      signal,
    )) {
      switch (frame.type) {
        case MessageType.ENTRIES:
          yield { kind: "entries", entries: decodeMessage(entriesCodec, frame.body).entries };
          break;
        case MessageType.FILE_BEGIN:
          yield { kind: "file-begin", entry: decodeMessage(fileBeginCodec, frame.body) };
          break;
        case MessageType.CHUNKS:
          yield { kind: "chunks", chunks: decodeMessage(chunksCodec, frame.body).chunks };
          break;
        case MessageType.FILE_END:
          yield { kind: "file-end", digest: decodeMessage(fileEndCodec, frame.body) };
          break;
        case MessageType.ENTRY_ERROR:
          yield { kind: "entry-error", failure: decodeMessage(entryErrorCodec, frame.body) };
          break;
        default:
          throw unexpected(frame.type, "MANIFEST");
      }
    }
  }

  /**
   * Fetches chunks by hash. Each chunk is checked against its requested hash and size before
   * `onChunk` sees it (compressed ones once decompressed); `onChunk` then owns `data` and must
   * give it back with `pool.release`. `wireBytes` is what the chunk took on the wire.
   */
  fetchChunks(
    chunks: ChunkRequest[],
    onChunk: (request: ChunkRequest, data: Buffer, wireBytes: number) => void,
    options: FetchOptions = {},
  ): Promise<void> {
    const compressLevel = this.hostCompresses ? (options.compressLevel ?? 0) : 0;
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
          let data = body.subarray(CHUNK_DATA_HEADER_SIZE);
          const compressed = type === MessageType.CHUNK_ZSTD;
          if (compressed) {
            if (compressLevel === 0)
              throw new TeleportError(ErrorCode.PROTOCOL, "compressed chunk not asked for");
            const packed = data;
            data = this.pool.acquire(request.size);
            try {
              this.#decompressor ??= new Decompressor();
              this.#decompressor.decompressExactly(data, packed);
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
   * Reads a byte range. Each piece arrives with the BLAKE3 hash the host computed when it read
   * the bytes and is checked before it is yielded; pieces must be contiguous and cover the range.
   */
  async *readRange(
    path: string,
    offset: number,
    length: number,
    signal?: AbortSignal,
  ): AsyncGenerator<Buffer> {
    const request = { credit: STREAM_WINDOW_BYTES * 4, path, offset, length };
    let position = offset;
    for await (const frame of this.#control.stream(
      MessageType.READ_RANGE,
      readRangeRequestCodec,
      request,
      signal,
    )) {
      if (frame.type !== MessageType.RANGE_DATA) throw unexpected(frame.type, "READ_RANGE");
      const header = decodeMessage(rangeDataHeaderCodec, frame.body);
      const data = frame.body.subarray(RANGE_DATA_HEADER_SIZE);
      if (header.offset !== position || position + data.length > offset + length) {
        throw new TeleportError(ErrorCode.PROTOCOL, "range pieces out of order");
      }
      if (!hashEquals(hashBytes(data), header.hash)) {
        throw new TeleportError(
          ErrorCode.CHUNK_CORRUPT,
          `bytes at offset ${position} of "${path}" do not match their hash`,
        );
      }
      position += data.length;
      yield data;
    }
    if (position !== offset + length) throw new TeleportError(ErrorCode.PROTOCOL, "range ended early");
  }

  close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#pingTimer);
    return this.#control.close();
  }

  destroy(error?: TeleportError): void {
    this.#control.destroy(error);
  }
}

function unexpected(type: number, request: string): TeleportError {
  return new TeleportError(ErrorCode.PROTOCOL, `unexpected frame type ${type} in answer to ${request}`);
}
