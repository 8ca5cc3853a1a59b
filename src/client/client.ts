/**
 * A client of a teleport host: connects by a share link (dialChoice checks the host's identity
 * on the way), then lists, streams manifests, reads ranges and fetches chunks over that one
 * authenticated connection (HostConnection), many requests at once. It also says how a pull's
 * data streams reach the same host (dataStreams).
 */
import { randomBytes } from "node:crypto";
import { hashBytes, hashEquals } from "../chunking/hash.js";
import type { BufferPool } from "../engine/buffer-pool.js";
import { ErrorCode, TeleportError } from "../errors.js";
import type { ManifestEvent } from "../receive/manifest-event.js";
import { streamKey } from "../transport/frame-mac.js";
import { parseLink, type ShareLink } from "../transport/link.js";
import { availableTransports } from "../transport/registry.js";
import { dialChoice, type TransportChoice } from "../transport/select.js";
import type { TransportKind, TransportStream } from "../transport/transport.js";
import { decodeMessage } from "../wire/codec.js";
import { type DeltaRequest, deltaRequestCodec } from "../wire/delta-messages.js";
import {
  type ChunkRequest,
  CLIENT_ID_SIZE,
  chunksCodec,
  type Entry,
  entriesCodec,
  entryErrorCodec,
  entrySkippedCodec,
  Feature,
  type FilterRule,
  fileBeginCodec,
  fileEndCodec,
  listRequestCodec,
  MessageType,
  manifestRequestCodec,
  RANGE_DATA_HEADER_SIZE,
  rangeDataHeaderCodec,
  readRangeRequestCodec,
  statRequestCodec,
  type UploadRequest,
  type UploadResult,
  uploadRequestCodec,
  uploadResultCodec,
  uploadStreamWantedCodec,
} from "../wire/messages.js";
import {
  type PunchReady,
  type PunchRequest,
  punchReadyCodec,
  punchRequestCodec,
} from "../wire/punch-messages.js";
import { type Changes, changesCodec, watchRequestCodec } from "../wire/watch-messages.js";
import { type PendingRequest, type RequestChannel, STREAM_WINDOW_BYTES } from "./channel.js";
import { type FetchOptions, HostConnection, handshakeTimeoutMs, unexpected } from "./host-connection.js";
import { DataStreamFactory } from "./pool/data-streams.js";

export type { FetchOptions } from "./host-connection.js";
export type { ManifestEvent };

/**
 * How far a manifest runs ahead of the pull reading it: ~850 small files, 215 MB of large files'
 * chunk lists, more than a round trip's worth of either at 1 Gbit/s and 50 ms. The host keeps
 * the bytes of the small files it lists for the GET_CHUNKS that follow (serve/recent-chunks.ts);
 * with 1 MiB, 7,676 of 20,000 10 KB files had left its 32 MiB before they were asked for, and
 * were opened and read a second time.
 */
const MANIFEST_WINDOW_BYTES = 128 * 1024;

export interface ConnectOptions {
  signal?: AbortSignal;
  clientName?: string;
  /** Hello.clientId: random unless given. */
  clientId?: Buffer;
  idleTimeoutMs?: number;
  /** Where received chunk buffers come from; a pool of its own when unset. */
  pool?: BufferPool;
  /** Told once when the connection ends, whatever ended it. */
  onClose?: (error: TeleportError) => void;
  /** How to reach the host (default `auto`: see dialChoice). */
  transport?: TransportChoice;
  /** How long the host's own address has before the link's relay is dialed (see dialChoice). */
  relayHeadStartMs?: number;
  /** Told of choices made for the caller (QUIC used because TCP did not get through). */
  onNotice?: (message: string) => void;
  /** Ask for files' extended attributes (Feature.XATTRS, `pull --xattrs`). */
  xattrs?: boolean;
  /** Ask the host to take plaintext data streams (Feature.PLAINTEXT, `pull --no-encryption`). */
  plaintext?: boolean;
  /** Ask whether the host takes uploads (Feature.UPLOAD, `push`). */
  upload?: boolean;
}

export class TeleportClient {
  readonly link: ShareLink;
  readonly #connection: HostConnection;
  readonly #choice: TransportChoice;

  private constructor(link: ShareLink, connection: HostConnection, choice: TransportChoice) {
    this.link = link;
    this.#connection = connection;
    this.#choice = choice;
  }

  static async connect(link: string | ShareLink, options: ConnectOptions = {}): Promise<TeleportClient> {
    const parsed = typeof link === "string" ? parseLink(link) : link;
    if (options.signal?.aborted === true) throw new TeleportError(ErrorCode.CANCELLED, "connect cancelled");
    const choice = options.transport ?? "auto";
    const stream = await dialChoice(parsed, choice, {
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.onNotice === undefined ? {} : { onNotice: options.onNotice }),
      ...(options.relayHeadStartMs === undefined ? {} : { relayHeadStartMs: options.relayHeadStartMs }),
      timeoutMs: handshakeTimeoutMs(options),
    });
    const connection = await HostConnection.open(stream, {
      secret: parsed.secret,
      clientId: options.clientId ?? randomBytes(CLIENT_ID_SIZE),
      clientName: options.clientName ?? "teleport",
      features:
        Feature.DELTA |
        Feature.WATCH |
        Feature.PUNCH |
        (options.xattrs === true ? Feature.XATTRS : 0) |
        (options.plaintext === true ? Feature.PLAINTEXT : 0) |
        (options.upload === true ? Feature.UPLOAD | Feature.ROUTED_STREAMS : 0),
      idleTimeoutMs: options.idleTimeoutMs,
      pool: options.pool,
      signal: options.signal,
      onClose: options.onClose,
    });
    return new TeleportClient(parsed, connection, choice);
  }

  /**
   * A client over a stream the other side dialed (an upload: once the pusher and the host swap
   * roles, the host pulls; push/): says HELLO with `secret` and resolves at WELCOME.
   */
  static async over(
    stream: TransportStream,
    secret: Buffer,
    options: ConnectOptions = {},
  ): Promise<TeleportClient> {
    const link = {
      host: stream.remoteAddress,
      port: stream.remotePort,
      fingerprint: Buffer.alloc(32),
      secret,
    };
    const connection = await HostConnection.open(stream, {
      secret,
      clientId: options.clientId ?? randomBytes(CLIENT_ID_SIZE),
      clientName: options.clientName ?? "teleport",
      // UPLOAD here: the pusher is asked for data streams (it grants it if it offers them).
      features: Feature.DELTA | Feature.UPLOAD,
      idleTimeoutMs: options.idleTimeoutMs,
      pool: options.pool,
      signal: options.signal,
      onClose: options.onClose,
    });
    return new TeleportClient(link, connection, stream.transport);
  }

  /**
   * Asks the host to take an upload (Feature.UPLOAD, a write link); once it has, sends
   * UPLOAD_SWITCH and returns the stream, on which this side now serves (push/pusher.ts).
   */
  async upload(request: UploadRequest, signal?: AbortSignal): Promise<TransportStream> {
    if (!this.#connection.hasFeature(Feature.UPLOAD))
      throw new TeleportError(
        ErrorCode.READ_ONLY,
        "the host takes no uploads (it runs without --allow-upload)",
      );
    this.#connection.stopPings();
    for await (const frame of this.#control.stream(MessageType.UPLOAD, uploadRequestCodec, request, signal)) {
      throw unexpected(frame.type, "UPLOAD");
    }
    return this.#connection.handOver();
  }

  /** Whether the pusher dials data streams when asked (a client made by `over`; Feature.UPLOAD). */
  get pusherOffersStreams(): boolean {
    return this.#connection.hasFeature(Feature.UPLOAD);
  }

  /** Asks the pusher for a data stream that gives `token` back (a client made by `over`). */
  wantUploadStream(token: Buffer): void {
    this.#control.connection.send(MessageType.UPLOAD_STREAM_WANTED, 0, uploadStreamWantedCodec, { token });
  }

  /** Tells the pusher how its upload ended (a client made by `over`). */
  sendUploadResult(result: UploadResult): void {
    this.#control.connection.send(MessageType.UPLOAD_RESULT, 0, uploadResultCodec, result);
  }

  /** Where received chunk buffers come from (fetchChunks' `onChunk` gives them back here). */
  get pool(): BufferPool {
    return this.#connection.pool;
  }

  /** Hello.clientId, which the pull's data streams give too. */
  get clientId(): Buffer {
    return this.#connection.clientId;
  }

  /**
   * Calls `listener` with the reason if the connection to the host is lost (not when closed):
   * pinged at a third of the idle timeout, it is a pull's word on whether the host is still
   * there. Returns the function that stops listening.
   */
  onLost(listener: (error: TeleportError) => void): () => void {
    return this.#connection.onLost(listener);
  }

  /** The transport the connection got through on. */
  get transport(): TransportKind {
    return this.#connection.stream.transport;
  }

  /** What the caller asked for (`--transport`): `auto` lets the pull find better paths. */
  get transportChoice(): TransportChoice {
    return this.#choice;
  }

  /** The control connection's peer: the host, or the relay it went through. */
  get remoteAddress(): string {
    return this.#connection.stream.remoteAddress;
  }

  /**
   * The round trip the transport measured (TCP: its handshake, answered by the host's kernel,
   * so unlike a ping not delayed by a host too busy to run its event loop).
   */
  get transportRttMs(): number {
    return this.#connection.stream.stats().rttMs ?? Number.POSITIVE_INFINITY;
  }

  /**
   * The transport the data streams may move to during a pull: under `auto`, when the host takes
   * both (Feature.BOTH_TRANSPORTS) and this machine has the QUIC binding.
   */
  get alternativeTransport(): TransportKind | undefined {
    if (this.#choice !== "auto" || !this.#connection.hasFeature(Feature.BOTH_TRANSPORTS)) return undefined;
    // Through a relay, the streams stay there: the host's address did not answer (data-streams.ts).
    if (this.transport === "relay") return undefined;
    return availableTransports().find((kind) => kind !== this.transport);
  }

  /** Whether the host sends files' extended attributes (Feature.XATTRS, when asked). */
  get hostSendsXattrs(): boolean {
    return this.#connection.hasFeature(Feature.XATTRS);
  }

  /** Whether the host sends HARDLINK entries (Feature.HARD_LINKS). */
  get hostSendsHardLinks(): boolean {
    return this.#connection.hasFeature(Feature.HARD_LINKS);
  }

  /** Whether the host takes plaintext data streams (Feature.PLAINTEXT, when asked). */
  get hostTakesPlaintext(): boolean {
    return this.#connection.hasFeature(Feature.PLAINTEXT);
  }

  /** Whether the host sends compressed chunks when asked (Feature.COMPRESSION). */
  get hostCompresses(): boolean {
    return this.#connection.hasFeature(Feature.COMPRESSION);
  }

  /** Whether the host answers DELTA requests (Feature.DELTA). */
  get hostSendsDeltas(): boolean {
    return this.#connection.hasFeature(Feature.DELTA);
  }

  /**
   * Sends a DELTA request on the control connection; `pending` takes its answers
   * (client/pull/delta-fetcher.ts). Returns what cancels it.
   */
  requestDeltas(request: DeltaRequest, pending: PendingRequest): () => void {
    return this.#control.open(MessageType.DELTA, deltaRequestCodec, request, pending).cancel;
  }

  get shareName(): string {
    return this.#connection.shareName;
  }

  /** Whether the host shares one file (`host FILE`): the share root stands for the file's folder. */
  get sharesOneFile(): boolean {
    return this.#connection.sharesOneFile;
  }

  /**
   * How a pull's data streams reach this client's host: as this client (its id), starting on the
   * transport it got through on, with its idle timeout; plaintext with `encrypted: false`, which
   * the host must have agreed to (hostTakesPlaintext).
   */
  dataStreams(options: { encrypted: boolean }): DataStreamFactory {
    const alternative = options.encrypted ? this.alternativeTransport : undefined;
    const macs = !options.encrypted && this.#connection.hasFeature(Feature.FRAME_MAC);
    return new DataStreamFactory({
      link: this.link,
      clientId: this.clientId,
      transport: this.transport,
      encrypted: options.encrypted,
      ...(macs ? { streamKey: streamKey(this.link.secret, this.#connection.stream.sessionBinding()) } : {}),
      idleTimeoutMs: this.#control.connection.idleTimeoutMs,
      hostFeatures: this.#connection.features,
      ...(alternative === undefined ? {} : { alternative }),
    });
  }

  /** Round-trip time to the host in milliseconds, over the connection's own queue. */
  ping(): Promise<number> {
    return this.#connection.ping();
  }

  get #control(): RequestChannel {
    return this.#connection.channel;
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

  /** Whether the host answers PUNCH (reach/client-punch.ts). */
  get hostPunches(): boolean {
    return this.#connection.hasFeature(Feature.PUNCH);
  }

  /** Asks the host to punch towards `request.client`: where its own QUIC socket is mapped. */
  async punch(request: PunchRequest, signal?: AbortSignal): Promise<PunchReady> {
    for await (const frame of this.#control.stream(MessageType.PUNCH, punchRequestCodec, request, signal)) {
      if (frame.type !== MessageType.PUNCH_READY) throw unexpected(frame.type, "PUNCH");
      return decodeMessage(punchReadyCodec, frame.body);
    }
    throw new TeleportError(ErrorCode.PROTOCOL, "PUNCH answered with no address");
  }

  /**
   * The manifest of `path`, walked by the host with `filters` (`--include`/`--exclude`), which
   * only a host with Feature.FILTERS is sent: another would send everything.
   */
  async *manifest(path: string, signal?: AbortSignal, filters?: FilterRule[]): AsyncGenerator<ManifestEvent> {
    const filtered = filters !== undefined && filters.length > 0;
    if (filtered && !this.#connection.hasFeature(Feature.FILTERS))
      throw new TeleportError(ErrorCode.FILTERS_UNSUPPORTED, "the host cannot apply --include/--exclude");
    const request = { credit: MANIFEST_WINDOW_BYTES, path, filters: filtered ? filters : undefined };
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
        case MessageType.ENTRY_SKIPPED:
          yield { kind: "entry-skipped", skipped: decodeMessage(entrySkippedCodec, frame.body) };
          break;
        default:
          throw unexpected(frame.type, "MANIFEST");
      }
    }
  }

  /**
   * What changes beneath `path` on the host (`pull --watch`, client/watch.ts): an empty batch
   * once the host watches, then its CHANGES frames as they come, until `signal` aborts.
   */
  async *watch(path: string, signal?: AbortSignal): AsyncGenerator<Changes> {
    if (!this.#connection.hasFeature(Feature.WATCH))
      throw new TeleportError(ErrorCode.WATCH_UNSUPPORTED, "the host does not offer live sync (--watch)");
    const request = { credit: STREAM_WINDOW_BYTES, path };
    for await (const frame of this.#control.stream(MessageType.WATCH, watchRequestCodec, request, signal)) {
      if (frame.type !== MessageType.CHANGES) throw unexpected(frame.type, "WATCH");
      yield decodeMessage(changesCodec, frame.body);
    }
    throw new TeleportError(ErrorCode.CONNECTION, "the host stopped watching");
  }

  /**
   * Fetches chunks by hash, each checked against its hash before `onChunk` sees it (see
   * HostConnection.fetchChunks).
   */
  fetchChunks<R extends ChunkRequest>(
    chunks: R[],
    onChunk: (request: R, data: Buffer, wireBytes: number) => void,
    options: FetchOptions = {},
  ): Promise<void> {
    return this.#connection.fetchChunks(chunks, onChunk, options);
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
    return this.#connection.close();
  }

  destroy(error?: TeleportError): void {
    this.#connection.destroy(error);
  }
}
