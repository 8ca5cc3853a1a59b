/**
 * A connection to a teleport host: connects over TLS, checks the pinned certificate, proves the
 * link's secret, and then runs requests concurrently over the one connection. Every response
 * frame is checked against the request it answers: its credit, its order, and for data its hash.
 */
import type { TLSSocket } from "node:tls";
import { hashBytes, hashEquals } from "../chunking/hash.js";
import { BufferPool } from "../engine/buffer-pool.js";
import { Connection } from "../engine/connection.js";
import { ErrorCode, isErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { parseLink, type ShareLink } from "../transport/link.js";
import { authProof, connectTls, HANDSHAKE_TIMEOUT_MS } from "../transport/tls.js";
import { type Codec, decodeMessage } from "../wire/codec.js";
import { LARGE_BODY_THRESHOLD } from "../wire/frame.js";
import {
  CHUNK_DATA_HEADER_SIZE,
  type ChunkRef,
  type ChunkRequest,
  chunksCodec,
  creditCodec,
  type Entry,
  emptyCodec,
  entriesCodec,
  entryCodec,
  errorCodec,
  type FileEnd,
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

export interface ConnectOptions {
  signal?: AbortSignal;
  clientName?: string;
  idleTimeoutMs?: number;
}

/** One event of a streamed manifest, in the order the host walks the tree. */
export type ManifestEvent =
  | { kind: "entries"; entries: Entry[] }
  | { kind: "file-begin"; entry: Entry }
  | { kind: "chunks"; chunks: ChunkRef[] }
  | { kind: "file-end"; digest: FileEnd };

/** Credit granted to streamed listings and manifests: how far the host may run ahead of us. */
const STREAM_WINDOW_BYTES = 1024 * 1024;
const PING_INTERVAL_MS = 10_000;

interface PendingRequest {
  /** Bytes the host may still send for this request. */
  credit: number;
  /** Returns true to keep `body` (a pooled buffer the handler releases later). */
  onFrame(type: number, body: Buffer): boolean | undefined;
  onEnd(): void;
  onError(error: TeleportError): void;
}

export class TeleportClient {
  readonly link: ShareLink;
  readonly pool = new BufferPool();
  #connection!: Connection;
  #welcome: Welcome | undefined;
  readonly #requests = new Map<number, PendingRequest>();
  #nextRequestId = 1;
  #pingTimer: NodeJS.Timeout | undefined;
  #onWelcome: ((error?: TeleportError) => void) | undefined;

  private constructor(link: ShareLink) {
    this.link = link;
  }

  static async connect(link: string | ShareLink, options: ConnectOptions = {}): Promise<TeleportClient> {
    const parsed = typeof link === "string" ? parseLink(link) : link;
    const client = new TeleportClient(parsed);
    const socket = await connectTls(parsed, options.signal);
    await client.#start(socket, options);
    return client;
  }

  get shareName(): string {
    return this.#welcome?.shareName ?? "";
  }

  get bytesReceived(): number {
    return this.#connection.bytesReceived;
  }

  async #start(socket: TLSSocket, options: ConnectOptions): Promise<void> {
    this.#connection = new Connection(
      socket,
      {
        allocateBody: (type, requestId, length) => this.#allocateBody(type, requestId, length),
        onFrame: (type, requestId, body, owned) => this.#onFrame(type, requestId, body, owned),
        onClose: (error) => this.#onClose(error),
      },
      options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs },
    );
    const welcomed = new Promise<void>((resolve, reject) => {
      this.#onWelcome = (error) => (error === undefined ? resolve() : reject(error));
    });
    const timer = setTimeout(
      () =>
        this.#connection.destroy(new TeleportError(ErrorCode.TIMEOUT, "host did not answer HELLO in time")),
      HANDSHAKE_TIMEOUT_MS,
    );
    this.#connection.send(MessageType.HELLO, 0, helloCodec, {
      magic: PROTOCOL_MAGIC,
      minVersion: MIN_PROTOCOL_VERSION,
      maxVersion: PROTOCOL_VERSION,
      features: 0,
      authProof: authProof(socket, this.link.secret),
      clientName: options.clientName ?? "teleport",
    });
    try {
      await welcomed;
    } finally {
      clearTimeout(timer);
    }
    this.#pingTimer = setInterval(() => {
      this.#connection.send(MessageType.PING, 0, pingCodec, { sentAt: Date.now() });
    }, PING_INTERVAL_MS).unref();
  }

  #allocateBody(type: number, requestId: number, length: number): Buffer {
    const pending = this.#requests.get(requestId);
    if (pending === undefined || length > pending.credit) {
      throw new TeleportError(
        ErrorCode.PROTOCOL,
        `host sent ${length} bytes that request ${requestId} did not ask for`,
      );
    }
    if (type !== MessageType.CHUNK_DATA && type !== MessageType.RANGE_DATA && type !== MessageType.CHUNKS) {
      throw new TeleportError(ErrorCode.PROTOCOL, `unexpected ${length}-byte frame of type ${type}`);
    }
    return this.pool.acquire(length);
  }

  #onFrame(type: number, requestId: number, body: Buffer, owned: boolean): void {
    const pooled = owned && body.length >= LARGE_BODY_THRESHOLD;
    if (requestId === 0) {
      this.#onConnectionFrame(type, body);
      return;
    }
    const pending = this.#requests.get(requestId);
    if (pending === undefined) {
      // A response to a request we cancelled; frames may still be in flight.
      if (pooled) this.pool.release(body);
      return;
    }
    let kept = false;
    try {
      if (type === MessageType.END) {
        this.#requests.delete(requestId);
        pending.onEnd();
      } else if (type === MessageType.ERROR) {
        this.#requests.delete(requestId);
        pending.onError(remoteError(body));
      } else {
        pending.credit -= body.length;
        if (pending.credit < 0)
          throw new TeleportError(ErrorCode.PROTOCOL, `host overran the credit of request ${requestId}`);
        kept = pending.onFrame(type, owned ? body : Buffer.from(body)) === true;
      }
    } catch (err) {
      this.#requests.delete(requestId);
      this.#connection.send(MessageType.CANCEL, requestId, emptyCodec, {});
      pending.onError(toTeleportError(err));
    } finally {
      if (pooled && !kept) this.pool.release(body);
    }
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
        this.#connection.destroy(remoteError(body));
        return;
      case MessageType.PONG:
        return;
      default:
        throw new TeleportError(ErrorCode.PROTOCOL, `unexpected connection frame of type ${type}`);
    }
  }

  #onClose(error: TeleportError | undefined): void {
    clearInterval(this.#pingTimer);
    const reason = error ?? new TeleportError(ErrorCode.CONNECTION, "host closed the connection");
    this.#onWelcome?.(reason);
    for (const pending of this.#requests.values()) pending.onError(reason);
    this.#requests.clear();
  }

  /** Opens a request; `pending` receives its frames. */
  #open<T>(
    type: number,
    codec: Codec<T>,
    value: T,
    pending: PendingRequest,
    signal?: AbortSignal,
  ): { requestId: number; cancel: () => void } {
    if (this.#connection.destroyed)
      throw this.#connection.error ?? new TeleportError(ErrorCode.CONNECTION, "connection closed");
    signal?.throwIfAborted();
    const requestId = this.#nextRequestId++;
    if (this.#nextRequestId > 0xffff_ffff) this.#nextRequestId = 1;
    this.#requests.set(requestId, pending);
    this.#connection.send(type, requestId, codec, value);
    const cancel = () => {
      if (!this.#requests.delete(requestId)) return;
      this.#connection.send(MessageType.CANCEL, requestId, emptyCodec, {});
      pending.onError(new TeleportError(ErrorCode.CANCELLED, "request cancelled"));
    };
    if (signal !== undefined) {
      signal.addEventListener("abort", cancel, { once: true });
      const { onEnd, onError } = pending;
      pending.onEnd = () => {
        signal.removeEventListener("abort", cancel);
        onEnd();
      };
      pending.onError = (error) => {
        signal.removeEventListener("abort", cancel);
        onError(error);
      };
    }
    return { requestId, cancel };
  }

  /**
   * A streamed response as an async iterator of raw frames. Credit is returned to the host as the
   * consumer takes frames, so the host never runs more than the window ahead.
   */
  async *#stream<T>(
    type: number,
    codec: Codec<T>,
    value: T & { credit?: number },
    signal?: AbortSignal,
  ): AsyncGenerator<{ type: number; body: Buffer }> {
    const queue: { type: number; body: Buffer }[] = [];
    let done = false;
    let failure: TeleportError | undefined;
    let wake: (() => void) | undefined;
    const window = value.credit ?? STREAM_WINDOW_BYTES;
    const pending: PendingRequest = {
      credit: window,
      onFrame: (frameType, body) => {
        queue.push({ type: frameType, body });
        wake?.();
        return true; // pooled bodies go back to the pool once the consumer is done with them
      },
      onEnd: () => {
        done = true;
        wake?.();
      },
      onError: (error) => {
        failure = error;
        wake?.();
      },
    };
    const { requestId, cancel } = this.#open(type, codec, value, pending, signal);
    let unacknowledged = 0;
    try {
      for (;;) {
        const frame = queue.shift();
        if (frame !== undefined) {
          unacknowledged += frame.body.length;
          if (unacknowledged >= window / 2 && !done) {
            pending.credit += unacknowledged;
            this.#connection.send(MessageType.CREDIT, requestId, creditCodec, { bytes: unacknowledged });
            unacknowledged = 0;
          }
          try {
            yield frame;
          } finally {
            this.#releaseIfPooled(frame.body);
          }
          continue;
        }
        if (failure !== undefined) throw failure;
        if (done) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      if (!done && failure === undefined) cancel();
      for (const frame of queue) this.#releaseIfPooled(frame.body);
    }
  }

  #releaseIfPooled(body: Buffer): void {
    if (body.length >= LARGE_BODY_THRESHOLD) this.pool.release(body);
  }

  async *list(
    path: string,
    options: { recursive?: boolean; signal?: AbortSignal } = {},
  ): AsyncGenerator<Entry> {
    const request = { credit: STREAM_WINDOW_BYTES, path, recursive: options.recursive ? 1 : 0 };
    for await (const frame of this.#stream(MessageType.LIST, listRequestCodec, request, options.signal)) {
      if (frame.type !== MessageType.ENTRIES) throw unexpected(frame.type, "LIST");
      yield* decodeMessage(entriesCodec, frame.body).entries;
    }
  }

  async stat(path: string, signal?: AbortSignal): Promise<Entry> {
    for await (const frame of this.#stream(MessageType.STAT, statRequestCodec, { path }, signal)) {
      if (frame.type !== MessageType.ENTRIES) throw unexpected(frame.type, "STAT");
      const [entry] = decodeMessage(entriesCodec, frame.body).entries;
      if (entry !== undefined) return entry;
    }
    throw new TeleportError(ErrorCode.PROTOCOL, "STAT answered with no entry");
  }

  async *manifest(path: string, signal?: AbortSignal): AsyncGenerator<ManifestEvent> {
    const request = { credit: STREAM_WINDOW_BYTES, path };
    for await (const frame of this.#stream(MessageType.MANIFEST, manifestRequestCodec, request, signal)) {
      switch (frame.type) {
        case MessageType.ENTRIES:
          yield { kind: "entries", entries: decodeMessage(entriesCodec, frame.body).entries };
          break;
        case MessageType.FILE_BEGIN:
          yield { kind: "file-begin", entry: decodeMessage(entryCodec, frame.body) };
          break;
        case MessageType.CHUNKS:
          yield { kind: "chunks", chunks: decodeMessage(chunksCodec, frame.body).chunks };
          break;
        case MessageType.FILE_END:
          yield { kind: "file-end", digest: decodeMessage(fileEndCodec, frame.body) };
          break;
        default:
          throw unexpected(frame.type, "MANIFEST");
      }
    }
  }

  /**
   * Fetches chunks by hash. Each chunk is checked against its requested hash and size before
   * `onChunk` sees it; `onChunk` then owns `data` and must give it back with `pool.release`.
   */
  fetchChunks(
    chunks: ChunkRequest[],
    onChunk: (request: ChunkRequest, data: Buffer) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      let next = 0;
      let credit = 0;
      for (const chunk of chunks) credit += CHUNK_DATA_HEADER_SIZE + chunk.size;
      const pending: PendingRequest = {
        credit,
        onFrame: (type, body) => {
          const request = chunks[next++];
          if (type !== MessageType.CHUNK_DATA || request === undefined) throw unexpected(type, "GET_CHUNKS");
          const data = body.subarray(CHUNK_DATA_HEADER_SIZE);
          if (data.length !== request.size || !hashEquals(hashBytes(data), request.hash)) {
            throw new TeleportError(
              ErrorCode.CHUNK_CORRUPT,
              `chunk at offset ${request.offset} of "${request.path}" does not match its BLAKE3 hash`,
            );
          }
          onChunk(request, data);
          return true;
        },
        onEnd: () =>
          next === chunks.length
            ? resolve()
            : reject(new TeleportError(ErrorCode.PROTOCOL, "host skipped chunks")),
        onError: reject,
      };
      try {
        this.#open(MessageType.GET_CHUNKS, getChunksRequestCodec, { chunks }, pending, signal);
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
    for await (const frame of this.#stream(MessageType.READ_RANGE, readRangeRequestCodec, request, signal)) {
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
    clearInterval(this.#pingTimer);
    return this.#connection.close();
  }

  destroy(error?: TeleportError): void {
    this.#connection.destroy(error);
  }
}

function remoteError(body: Buffer): TeleportError {
  const { code, message } = decodeMessage(errorCodec, body);
  return new TeleportError(isErrorCode(code) ? code : ErrorCode.PROTOCOL, `host: ${message}`);
}

function unexpected(type: number, request: string): TeleportError {
  return new TeleportError(ErrorCode.PROTOCOL, `unexpected frame type ${type} in answer to ${request}`);
}
