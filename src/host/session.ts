import { fstatSync } from "node:fs";
import type { Chunker } from "../chunking/chunker.js";
import { hashBytes } from "../chunking/hash.js";
import { AdaptiveLevel } from "../compression/adaptive-level.js";
import { hasCompressedExtension, hasCompressedMagic } from "../compression/compressible.js";
import type { CompressionThreads } from "../compression/compression-threads.js";
import { MAX_LEVEL } from "../compression/zstd.js";
import type { BufferPool } from "../engine/buffer-pool.js";
import { ByteBudget } from "../engine/byte-budget.js";
import { Connection, encodeFrame } from "../engine/connection.js";
import { CreditGate } from "../engine/credit.js";
import { readAt, readvAt } from "../engine/file-io.js";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { type FileSlice, platformIo, type SocketSender } from "../platform/io.js";
import type { ChunkIndex } from "../store/chunk-index.js";
import { type TransportKind, type TransportStream, verifyAuthProof } from "../transport/transport.js";
import { type Codec, decodeMessage } from "../wire/codec.js";
import { FRAME_HEADER_SIZE, writeFrameHeader } from "../wire/frame.js";
import {
  CHUNK_DATA_HEADER_SIZE,
  type ChunkRequest,
  COMPRESS_ADAPTIVE,
  COMPRESS_ADAPTIVE_ALWAYS,
  creditCodec,
  emptyCodec,
  entriesCodec,
  Feature,
  getChunksRequestCodec,
  helloCodec,
  listRequestCodec,
  MAX_CHUNK_SIZE,
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
  welcomeCodec,
} from "../wire/messages.js";
import type { AuthLimiter } from "./auth-limiter.js";
import { EntryBatch, ManifestStream, type SendFrame } from "./manifest-stream.js";
import { OpenFiles } from "./open-files.js";
import type { RecentChunks } from "./recent-chunks.js";
import { isWalkFailure, type Share } from "./share.js";

/** Fault injection for tests of the client's defences; never set by the CLI. */
export interface HostFaults {
  /** Called with each chunk about to be sent; may change its bytes in place. */
  corruptChunk?: (request: ChunkRequest, data: Buffer) => void;
  /**
   * Awaited before each chunk is sent (to slow a transfer down, or act in the middle of it, such
   * as cutting the connection that carries it).
   */
  beforeChunk?: (request: ChunkRequest, connection: { destroy(): void }) => Promise<void>;
  /** Called with each group of frames as it goes out (compressed, where it was); may change it. */
  beforeSend?: (frames: Buffer) => void;
}

export interface SessionContext {
  share: Share;
  secret: Buffer;
  chunker: Chunker;
  pool: BufferPool;
  idleTimeoutMs: number;
  faults: HostFaults | undefined;
  /**
   * Bytes of chunk data read and not yet written to a socket, shared by all connections in turn
   * (each also has its own share, CONNECTION_SEND_BYTES): the host's memory stays bounded
   * however many clients pull at once, and each gets its turn at the disk and the CPU.
   */
  sendBudget: ByteBudget;
  /** Compresses chunks for clients that ask (Feature.COMPRESSION); undefined: compression off. */
  compression: CompressionThreads | undefined;
  /** Bytes of small files just read for a manifest, shared by all connections. */
  recent: RecentChunks;
  /** Chunk lists of files already hashed (the file-state cache), shared by all connections. */
  index: ChunkIndex | undefined;
  /** The transports the host listens on (Feature.BOTH_TRANSPORTS when it is both). */
  transports: ReadonlySet<TransportKind>;
  /** Plaintext data streams are taken (`host --allow-no-encryption`): Feature.PLAINTEXT. */
  allowPlaintext: boolean;
  /** Time to send HELLO once TLS is up. */
  handshakeTimeoutMs: number;
  /** Wrong secrets per address, shared by all connections. */
  authLimiter: AuthLimiter;
  /** Told when a connection ends with an error (the CLI logs it). */
  onSessionError: ((remote: string, error: TeleportError) => void) | undefined;
}

const CHUNK_FRAME_PREFIX = FRAME_HEADER_SIZE + CHUNK_DATA_HEADER_SIZE;
const RANGE_FRAME_PREFIX = FRAME_HEADER_SIZE + RANGE_DATA_HEADER_SIZE;
/** Back-to-back chunks of one file are read together, up to this many bytes. */
const READ_RUN_BYTES = 2 * 1024 * 1024;
/** A range read is sent as hashed pieces of at most this size. */
const RANGE_PIECE_BYTES = 1024 * 1024;

/**
 * Chunk data one connection may have read and queued at once: the group being sent, the next one
 * read ahead, and the socket's queue (Connection's write buffer).
 */
const CONNECTION_SEND_BYTES = 8 * 1024 * 1024;

/** Files this connection remembers as not worth compressing (see #compress). */
const DENSE_FILES_REMEMBERED = 1024;
/**
 * After a group of a file's chunks that did not compress, this many bytes of the file skip the
 * compressor; then it is tried again. A file can be mixed (an executable's code, then its
 * packed resources): one dense group does not say the rest is.
 */
const DENSE_SKIP_BYTES = 16 * 1024 * 1024;

/** Files a direct send holds open at once: a group of small files is sent in several. */
const OPEN_FILES_PER_SEND = 32;

/** What a plaintext stream serves (see #dispatch). */
const PLAINTEXT_MESSAGES = new Set<number>([
  MessageType.GET_CHUNKS,
  MessageType.PING,
  MessageType.CANCEL,
  MessageType.CREDIT,
]);

/** Requests one connection may have open at once; more is a protocol error. */
const MAX_OPEN_REQUESTS = 256;
/** Largest request frame accepted from a client (a GET_CHUNKS with long paths). */
const MAX_REQUEST_BODY = 1024 * 1024;
interface OpenRequest {
  abort: AbortController;
  credit: CreditGate;
}

/** A pooled buffer of frames and the send budget it holds, both given back by `release`. */
interface Lease {
  frames: Buffer;
  release: () => void;
}

export class HostSession {
  readonly #context: SessionContext;
  readonly #connection: Connection;
  readonly #requests = new Map<number, OpenRequest>();
  readonly #openFiles: OpenFiles;
  readonly #stream: TransportStream;
  readonly #sendBudget = new ByteBudget(CONNECTION_SEND_BYTES);
  /**
   * Files whose chunks did not compress, and the offset up to which their chunks skip the
   * compression thread (DENSE_SKIP_BYTES past the group that did not compress).
   */
  readonly #denseFiles = new Map<string, number>();
  /**
   * The level for requests that leave it to the host (COMPRESS_ADAPTIVE, or _ALWAYS), made on
   * the first; `requested` is which of the two it follows.
   */
  #adaptive: { requested: number; level: AdaptiveLevel } | undefined;
  /** Whose turn this connection's reads take in the host's send budget: its client's. */
  #owner: unknown = this;
  #authenticated = false;
  /** Features both sides have: HELLO's offer, of what this host supports. */
  #features = 0;
  /** A plaintext stream's sendfile sender, made on its first GET_CHUNKS; undefined otherwise. */
  #sender: SocketSender | undefined;
  readonly #authTimer: NodeJS.Timeout;

  constructor(stream: TransportStream, context: SessionContext) {
    this.#stream = stream;
    this.#context = context;
    this.#openFiles = new OpenFiles((wirePath) => context.share.resolveFile(wirePath).absolutePath);
    this.#connection = new Connection(
      stream.stream,
      {
        allocateBody: (_type, _id, length) => {
          if (length > MAX_REQUEST_BODY) {
            throw new TeleportError(
              ErrorCode.FRAME_TOO_LARGE,
              `request of ${length} bytes is over the limit`,
            );
          }
          return Buffer.allocUnsafe(length);
        },
        onFrame: (type, requestId, body) => this.#onFrame(type, requestId, body),
        onClose: (error) => this.#onClose(error),
      },
      { idleTimeoutMs: context.idleTimeoutMs },
    );
    this.#authTimer = setTimeout(
      () => this.#connection.destroy(new TeleportError(ErrorCode.TIMEOUT, "no HELLO in time")),
      context.handshakeTimeoutMs,
    );
  }

  get closed(): Promise<void> {
    return this.#connection.closed;
  }

  close(): Promise<void> {
    return this.#connection.close();
  }

  destroy(): void {
    this.#connection.destroy();
  }

  #onClose(error: TeleportError | undefined): void {
    clearTimeout(this.#authTimer);
    if (error !== undefined)
      this.#context.onSessionError?.(`${this.#stream.remoteAddress}:${this.#stream.remotePort}`, error);
    for (const request of this.#requests.values()) request.abort.abort();
    this.#requests.clear();
    this.#sender?.close();
    this.#openFiles.closeAll();
  }

  #onFrame(type: number, requestId: number, body: Buffer): void {
    try {
      if (!this.#authenticated) {
        if (type !== MessageType.HELLO) throw new TeleportError(ErrorCode.PROTOCOL, "expected HELLO");
        this.#onHello(body);
        return;
      }
      this.#dispatch(type, requestId, body);
    } catch (err) {
      const error = toTeleportError(err);
      for (const request of this.#requests.values()) request.abort.abort();
      this.#connection.sendError(0, { code: error.code, message: error.detail });
      this.#connection.close(error);
    }
  }

  #onHello(body: Buffer): void {
    const hello = decodeMessage(helloCodec, body);
    if (hello.magic !== PROTOCOL_MAGIC) throw new TeleportError(ErrorCode.PROTOCOL, "not a teleport client");
    if (hello.maxVersion < MIN_PROTOCOL_VERSION || hello.minVersion > PROTOCOL_VERSION) {
      throw new TeleportError(
        ErrorCode.VERSION,
        `client speaks protocol ${hello.minVersion}-${hello.maxVersion}, host ${MIN_PROTOCOL_VERSION}-${PROTOCOL_VERSION}`,
      );
    }
    const address = this.#stream.remoteAddress;
    const { authLimiter, secret } = this.#context;
    const waitMs = authLimiter.refusedFor(address);
    if (waitMs > 0) {
      throw new TeleportError(
        ErrorCode.AUTH,
        `too many wrong secrets from ${address}: refused for ${Math.ceil(waitMs / 1000)} s more`,
      );
    }
    if (!verifyAuthProof(this.#stream, secret, hello.authProof)) {
      authLimiter.failed(address);
      throw new TeleportError(ErrorCode.AUTH, "the link's secret was not accepted");
    }
    clearTimeout(this.#authTimer);
    this.#authenticated = true;
    const supported =
      Feature.ENTRY_ERRORS |
      Feature.HARD_LINKS |
      (platformIo.kind === "native" ? Feature.XATTRS : 0) |
      (this.#context.compression === undefined ? 0 : Feature.COMPRESSION) |
      (this.#context.transports.size > 1 ? Feature.BOTH_TRANSPORTS : 0) |
      (this.#context.allowPlaintext ? Feature.PLAINTEXT : 0);
    this.#features = hello.features & supported;
    if (hello.clientId !== undefined) this.#owner = hello.clientId.toString("hex");
    this.#connection.send(MessageType.WELCOME, 0, welcomeCodec, {
      version: Math.min(PROTOCOL_VERSION, hello.maxVersion),
      features: this.#features,
      shareName: this.#context.share.name,
      maxChunkSize: MAX_CHUNK_SIZE,
    });
  }

  #dispatch(type: number, requestId: number, body: Buffer): void {
    if (!this.#stream.encrypted && !PLAINTEXT_MESSAGES.has(type)) {
      // Whatever crosses a plaintext stream may be read or changed on the way: only chunks do,
      // which the client checks against hashes it got over TLS.
      this.#connection.sendError(requestId, {
        code: ErrorCode.PROTOCOL,
        message: "only chunks are served over an unencrypted stream",
      });
      return;
    }
    switch (type) {
      case MessageType.PING:
        this.#connection.send(MessageType.PONG, requestId, pingCodec, decodeMessage(pingCodec, body));
        return;
      case MessageType.CANCEL:
        this.#requests.get(requestId)?.abort.abort();
        return;
      case MessageType.CREDIT:
        this.#requests.get(requestId)?.credit.grant(decodeMessage(creditCodec, body).bytes);
        return;
      case MessageType.LIST: {
        const request = decodeMessage(listRequestCodec, body);
        this.#serve(requestId, request.credit, (open) =>
          this.#list(requestId, request.path, request.recursive !== 0, open),
        );
        return;
      }
      case MessageType.STAT: {
        const request = decodeMessage(statRequestCodec, body);
        this.#serve(requestId, Number.MAX_SAFE_INTEGER, () => this.#stat(requestId, request.path));
        return;
      }
      case MessageType.MANIFEST: {
        const request = decodeMessage(manifestRequestCodec, body);
        this.#serve(requestId, request.credit, (open) => this.#manifest(requestId, request.path, open));
        return;
      }
      case MessageType.GET_CHUNKS: {
        const { chunks, compressLevel } = decodeMessage(getChunksRequestCodec, body);
        const level = (this.#features & Feature.COMPRESSION) === 0 ? 0 : (compressLevel ?? 0);
        this.#serve(requestId, Number.MAX_SAFE_INTEGER, (open) =>
          this.#getChunks(requestId, chunks, level, open),
        );
        return;
      }
      case MessageType.READ_RANGE: {
        const request = decodeMessage(readRangeRequestCodec, body);
        this.#serve(requestId, request.credit, (open) =>
          this.#readRange(requestId, request.path, request.offset, request.length, open),
        );
        return;
      }
      default:
        // Unknown message types from a newer client are refused per request, not fatally.
        this.#connection.sendError(requestId, {
          code: ErrorCode.PROTOCOL,
          message: `unknown message type ${type}`,
        });
    }
  }

  /** Runs one request to completion: END on success, ERROR on failure, nothing if cancelled. */
  #serve(requestId: number, credit: number, run: (open: OpenRequest) => Promise<void>): void {
    if (requestId === 0 || this.#requests.has(requestId)) {
      throw new TeleportError(ErrorCode.PROTOCOL, `request id ${requestId} is invalid or already in use`);
    }
    if (this.#requests.size >= MAX_OPEN_REQUESTS) {
      throw new TeleportError(ErrorCode.PROTOCOL, `more than ${MAX_OPEN_REQUESTS} requests open at once`);
    }
    const open: OpenRequest = { abort: new AbortController(), credit: new CreditGate(credit) };
    this.#requests.set(requestId, open);
    run(open)
      .then(() => {
        if (!open.abort.signal.aborted) this.#connection.send(MessageType.END, requestId, emptyCodec, {});
      })
      .catch((err: unknown) => {
        if (open.abort.signal.aborted) return;
        const error = toTeleportError(err);
        this.#connection.sendError(requestId, { code: error.code, message: error.detail });
      })
      .finally(() => this.#requests.delete(requestId));
  }

  /** Sends a small response frame once the request has credit for it. */
  async #sendCredited<T>(
    requestId: number,
    open: OpenRequest,
    type: number,
    codec: Codec<T>,
    value: T,
  ): Promise<void> {
    const frame = encodeFrame(type, requestId, codec, value);
    await open.credit.take(frame.length - FRAME_HEADER_SIZE, open.abort.signal);
    this.#connection.sendFrame(frame);
    await this.#connection.whenWritable();
  }

  async #stat(requestId: number, path: string): Promise<void> {
    const { entry } = this.#context.share.stat(path);
    this.#connection.send(MessageType.ENTRIES, requestId, entriesCodec, { entries: [entry] });
  }

  async #list(requestId: number, path: string, recursive: boolean, open: OpenRequest): Promise<void> {
    const share = this.#context.share;
    const items = recursive ? share.walk(path, open.abort.signal) : share.list(path, open.abort.signal);
    const batch = new EntryBatch((entries) =>
      this.#sendCredited(requestId, open, MessageType.ENTRIES, entriesCodec, { entries }),
    );
    for await (const item of items) {
      if (isWalkFailure(item)) throw item.failure;
      await batch.add(item.entry);
    }
    await batch.flush();
  }

  #manifest(requestId: number, path: string, open: OpenRequest): Promise<void> {
    const send: SendFrame = (type, codec, value) => this.#sendCredited(requestId, open, type, codec, value);
    const options = {
      entryErrors: (this.#features & Feature.ENTRY_ERRORS) !== 0,
      hardLinks: (this.#features & Feature.HARD_LINKS) !== 0,
      xattrs: (this.#features & Feature.XATTRS) !== 0,
      signal: open.abort.signal,
    };
    return new ManifestStream(this.#context, send, options).run(path);
  }

  async #getChunks(
    requestId: number,
    requests: ChunkRequest[],
    compressLevel: number,
    open: OpenRequest,
  ): Promise<void> {
    for (const request of requests) {
      if (request.size === 0 || request.size > MAX_CHUNK_SIZE) {
        throw new TeleportError(ErrorCode.PROTOCOL, `chunk size ${request.size} is out of range`);
      }
    }
    const groups = writeGroups(contiguousRuns(requests));
    const signal = open.abort.signal;
    const sender =
      compressLevel === 0 && this.#context.faults === undefined ? this.#plainSender() : undefined;
    if (sender !== undefined) {
      await this.#sendGroupsDirect(requestId, groups, sender, signal);
      return;
    }
    // One group read ahead: the next group is read while this one is encrypted and sent. The
    // wait for queue space comes before each send, so the request ends (and END goes out) as
    // soon as its last group is queued.
    let next: Promise<Lease> | undefined = groups[0] && this.#readAhead(requestId, groups[0], signal);
    let lease: Lease | undefined;
    try {
      for (let g = 0; g < groups.length; g++) {
        lease = await (next as Promise<Lease>);
        next = undefined;
        const following = groups[g + 1];
        if (following !== undefined) next = this.#readAhead(requestId, following, signal);
        const faults = this.#context.faults;
        if (faults !== undefined)
          await this.#injectFaults(faults, groups[g] as ChunkRequest[][], lease.frames);
        const frames =
          compressLevel > 0
            ? await this.#compress(groups[g] as ChunkRequest[][], lease.frames, compressLevel)
            : lease.frames;
        faults?.beforeSend?.(frames);
        await this.#connection.whenWritable();
        if (signal.aborted) return;
        const sending = lease;
        lease = undefined;
        this.#connection.sendOwnedFrame(frames, sending.release);
      }
    } finally {
      lease?.release();
      next?.then(
        (unsent) => unsent.release(),
        () => {},
      );
    }
  }

  /**
   * Reads a group while the one before is sent. Its failure (a cancel while it waits for send
   * budget) is taken when it is awaited; until then it must not count as unhandled, which
   * would end the process: the request may be waiting on the socket meanwhile.
   */
  #readAhead(requestId: number, runs: ChunkRequest[][], signal: AbortSignal): Promise<Lease> {
    const reading = this.#readGroupFrames(requestId, runs, signal);
    reading.catch(() => {});
    return reading;
  }

  /** The sender of a plaintext stream, where the platform has one (made on first use). */
  #plainSender(): SocketSender | undefined {
    const socket = this.#stream.plainSocket;
    if (socket !== undefined && this.#sender === undefined && !this.#connection.destroyed)
      this.#sender = platformIo.openSender(socket);
    return this.#sender;
  }

  /**
   * Sends chunks over a plaintext stream straight from the page cache: a group's frame headers
   * from one small buffer, their data by the sender's sendfile. No chunk byte is read into
   * memory, so no send budget is taken: the socket's buffer is all that is in flight.
   */
  async #sendGroupsDirect(
    requestId: number,
    groups: ChunkRequest[][][],
    sender: SocketSender,
    signal: AbortSignal,
  ): Promise<void> {
    for (const group of groups.flatMap((runs) => piecesOf(runs, OPEN_FILES_PER_SEND))) {
      const requests = group.flat();
      const headers = Buffer.allocUnsafe(requests.length * CHUNK_FRAME_PREFIX);
      for (const [i, request] of requests.entries()) {
        const at = i * CHUNK_FRAME_PREFIX;
        writeFrameHeader(
          headers,
          at,
          MessageType.CHUNK_DATA,
          requestId,
          CHUNK_DATA_HEADER_SIZE + request.size,
        );
        request.hash.copy(headers, at + FRAME_HEADER_SIZE);
      }
      const paths = group.map((run) => (run[0] as ChunkRequest).path);
      await this.#openFiles.withAll(paths, async (fds) => {
        if (signal.aborted) return;
        for (const [r, run] of group.entries()) checkLength(fds[r] as number, run);
        const slices: FileSlice[] = group.flatMap((run, r) =>
          run.map((request) => ({ fd: fds[r] as number, offset: request.offset, length: request.size })),
        );
        try {
          await this.#connection.writeDirect(() => sender.send(headers, slices));
        } catch (err) {
          // Part of a frame may have gone out (a file cut short since the check): the stream
          // cannot go on. The client hands its batches to another stream.
          const error = toTeleportError(err);
          this.#connection.destroy(error);
          throw error;
        }
      });
      if (signal.aborted) return;
    }
  }

  /**
   * The group's frames with the chunks worth it compressed (in place, on a compression thread).
   * Decided per file, then per chunk: files of compressed formats, and files whose chunks did
   * not compress before, skip the thread altogether; the thread skips dense-looking chunks and
   * keeps only what saved 5%. `requested` is the client's level, or one of the adaptive ones.
   */
  async #compress(runs: ChunkRequest[][], frames: Buffer, requested: number): Promise<Buffer> {
    const compression = this.#context.compression;
    if (compression === undefined) return frames;
    const store = storeFlags(runs, frames, (path, offset) => offset < (this.#denseFiles.get(path) ?? 0));
    if (store.every((flag) => flag === 1)) return frames;
    const adaptive = this.#adaptiveLevel(requested);
    const level = adaptive?.level() ?? Math.min(requested, MAX_LEVEL);
    if (level === 0) return frames;
    const started = performance.now();
    const result = await compression.compress(frames, level, store);
    adaptive?.compressed(performance.now() - started);
    const first = (runs[0] as ChunkRequest[])[0] as ChunkRequest;
    if (result.compressedChunks === 0 && runs.every((run) => (run[0] as ChunkRequest).path === first.path)) {
      if (this.#denseFiles.size >= DENSE_FILES_REMEMBERED) this.#denseFiles.clear();
      const last = (runs.at(-1) as ChunkRequest[]).at(-1) as ChunkRequest;
      this.#denseFiles.set(first.path, last.offset + last.size + DENSE_SKIP_BYTES);
    }
    return frames.subarray(0, result.length);
  }

  /** The connection's adaptive level when `requested` asks for one, made on first use. */
  #adaptiveLevel(requested: number): AdaptiveLevel | undefined {
    if (requested !== COMPRESS_ADAPTIVE && requested !== COMPRESS_ADAPTIVE_ALWAYS) return undefined;
    if (this.#adaptive?.requested !== requested) {
      const level = new AdaptiveLevel({ always: requested === COMPRESS_ADAPTIVE_ALWAYS });
      this.#adaptive = { requested, level };
    }
    return this.#adaptive.level;
  }

  /**
   * A pooled buffer of `bytes` once both this connection's send budget and the host's have room
   * for it (waiting in line for them).
   */
  async #lease(bytes: number, signal: AbortSignal): Promise<Lease> {
    const shared = this.#context.sendBudget;
    const own = await this.#sendBudget.take(bytes, signal);
    let taken: number;
    try {
      taken = await shared.take(bytes, signal, this.#owner);
    } catch (err) {
      this.#sendBudget.give(own);
      throw err;
    }
    const frames = this.#context.pool.acquire(bytes);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#context.pool.release(frames);
      this.#sendBudget.give(own);
      shared.give(taken);
    };
    return { frames, release };
  }

  async #injectFaults(faults: HostFaults, runs: ChunkRequest[][], frames: Buffer): Promise<void> {
    let at = 0;
    for (const run of runs) {
      for (const request of run) {
        await faults.beforeChunk?.(request, this);
        at += CHUNK_FRAME_PREFIX;
        faults.corruptChunk?.(request, frames.subarray(at, at + request.size));
        at += request.size;
      }
    }
  }

  /**
   * Lays a group of runs out as their CHUNK_DATA frames back to back in one pooled buffer, sent
   * with one TLS write of up to 2 MiB: each run of back-to-back chunks of one file is read with
   * one readv, or copied from the chunks the manifest just read (see RecentChunks). Written frame
   * by frame, Node's TLS socket gathers queued frames into a writev that copies them all once
   * more (measured: 1.45 s of host CPU per GiB of 64 KiB frames, against ~1 s for 1 MiB ones),
   * and a write per 10 KB file cost a TLS record and a system call each.
   */
  async #readGroupFrames(requestId: number, runs: ChunkRequest[][], signal: AbortSignal): Promise<Lease> {
    let total = 0;
    for (const run of runs) for (const request of run) total += CHUNK_FRAME_PREFIX + request.size;
    const lease = await this.#lease(total, signal);
    const frames = lease.frames;
    try {
      let at = 0;
      for (const run of runs) {
        const targets: Buffer[] = [];
        for (const request of run) {
          writeFrameHeader(
            frames,
            at,
            MessageType.CHUNK_DATA,
            requestId,
            CHUNK_DATA_HEADER_SIZE + request.size,
          );
          request.hash.copy(frames, at + FRAME_HEADER_SIZE);
          at += CHUNK_FRAME_PREFIX;
          targets.push(frames.subarray(at, at + request.size));
          at += request.size;
        }
        if (!this.#copyRecent(run, targets)) await this.#readRun(run, targets);
      }
    } catch (err) {
      lease.release();
      throw err;
    }
    return lease;
  }

  /** Fills `targets` from the recent-chunk cache if it holds every chunk of the run. */
  #copyRecent(run: ChunkRequest[], targets: Buffer[]): boolean {
    const recent = this.#context.recent;
    const found: Buffer[] = [];
    for (const request of run) {
      const data = recent.get(request.hash);
      if (data === undefined || data.length !== request.size) return false;
      found.push(data);
    }
    for (const [i, data] of found.entries()) data.copy(targets[i] as Buffer);
    return true;
  }

  async #readRun(run: ChunkRequest[], targets: Buffer[]): Promise<void> {
    const first = run[0] as ChunkRequest;
    const wanted = targets.reduce((sum, target) => sum + target.length, 0);
    const bytesRead = await this.#openFiles.with(first.path, (fd) => readvAt(fd, targets, first.offset));
    if (bytesRead !== wanted) {
      throw new TeleportError(ErrorCode.FILE_CHANGED, `"${first.path}" is shorter than it was when listed`);
    }
  }

  async #readExactly(
    path: string,
    target: Buffer,
    at: number,
    size: number,
    position: number,
  ): Promise<void> {
    const bytesRead = await this.#openFiles.with(path, (fd) => readAt(fd, target, at, size, position));
    if (bytesRead !== size) {
      throw new TeleportError(ErrorCode.FILE_CHANGED, `"${path}" is shorter than it was when listed`);
    }
  }

  async #readRange(
    requestId: number,
    path: string,
    offset: number,
    length: number,
    open: OpenRequest,
  ): Promise<void> {
    const { stats } = this.#context.share.resolveFile(path);
    if (offset + length > stats.size) {
      throw new TeleportError(
        ErrorCode.RANGE,
        `range ${offset}+${length} is past the end of "${path}" (${stats.size} bytes)`,
      );
    }
    let position = offset;
    const end = offset + length;
    while (position < end) {
      // Pieces are aligned to RANGE_PIECE_BYTES, so the same range is always hashed the same way.
      const pieceEnd = Math.min(end, (Math.floor(position / RANGE_PIECE_BYTES) + 1) * RANGE_PIECE_BYTES);
      const size = pieceEnd - position;
      await open.credit.take(RANGE_DATA_HEADER_SIZE + size, open.abort.signal);
      const lease = await this.#lease(RANGE_FRAME_PREFIX + size, open.abort.signal);
      const frame = lease.frames;
      try {
        await this.#readExactly(path, frame, RANGE_FRAME_PREFIX, size, position);
      } catch (err) {
        lease.release();
        throw err;
      }
      const data = frame.subarray(RANGE_FRAME_PREFIX);
      writeFrameHeader(frame, 0, MessageType.RANGE_DATA, requestId, RANGE_DATA_HEADER_SIZE + size);
      const header = { offset: position, hash: hashBytes(data) };
      rangeDataHeaderCodec.encode(
        { start: FRAME_HEADER_SIZE, end: RANGE_FRAME_PREFIX, buffer: frame },
        header,
      );
      this.#connection.sendOwnedFrame(frame, lease.release);
      position = pieceEnd;
      await this.#connection.whenWritable();
    }
  }
}

/**
 * Which frames of a group to send as they are: chunks of files whose name or first bytes say
 * they are compressed already, or whose chunks just before did not compress (`knownDense`). The
 * compressor also skips dense-looking chunks of any file.
 */
function storeFlags(
  runs: readonly ChunkRequest[][],
  frames: Buffer,
  knownDense: (path: string, offset: number) => boolean,
): Uint8Array {
  const flags = new Uint8Array(runs.reduce((sum, run) => sum + run.length, 0));
  let index = 0;
  let at = 0;
  for (const run of runs) {
    const first = run[0] as ChunkRequest;
    const start = frames.subarray(
      at + CHUNK_FRAME_PREFIX,
      at + CHUNK_FRAME_PREFIX + Math.min(first.size, 16),
    );
    const store =
      hasCompressedExtension(first.path) ||
      knownDense(first.path, first.offset) ||
      (first.offset === 0 && hasCompressedMagic(start));
    for (const request of run) {
      if (store) flags[index] = 1;
      index++;
      at += CHUNK_FRAME_PREFIX + request.size;
    }
  }
  return flags;
}

/** Splits requests into runs of chunks that lie back to back in one file (at most READ_RUN_BYTES). */
function contiguousRuns(requests: readonly ChunkRequest[]): ChunkRequest[][] {
  const runs: ChunkRequest[][] = [];
  let run: ChunkRequest[] = [];
  let end = -1;
  let bytes = 0;
  for (const request of requests) {
    const previous = run[0];
    const follows = previous !== undefined && request.path === previous.path && request.offset === end;
    if (!follows || bytes + request.size > READ_RUN_BYTES) {
      if (run.length > 0) runs.push(run);
      run = [];
      bytes = 0;
    }
    run.push(request);
    end = request.offset + request.size;
    bytes += request.size;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/** A run's file still holds all its chunks, or FILE_CHANGED (before a byte of it is sent). */
function checkLength(fd: number, run: readonly ChunkRequest[]): void {
  const last = run.at(-1) as ChunkRequest;
  if (fstatSync(fd).size < last.offset + last.size) {
    const { path } = run[0] as ChunkRequest;
    throw new TeleportError(ErrorCode.FILE_CHANGED, `"${path}" is shorter than it was when listed`);
  }
}

function piecesOf<T>(items: readonly T[], size: number): T[][] {
  const result: T[][] = [];
  for (let at = 0; at < items.length; at += size) result.push(items.slice(at, at + size));
  return result;
}

/** Gathers runs into groups of at most READ_RUN_BYTES (a larger run is a group of its own). */
function writeGroups(runs: readonly ChunkRequest[][]): ChunkRequest[][][] {
  const groups: ChunkRequest[][][] = [];
  let group: ChunkRequest[][] = [];
  let bytes = 0;
  for (const run of runs) {
    const runBytes = run.reduce((sum, request) => sum + CHUNK_FRAME_PREFIX + request.size, 0);
    if (group.length > 0 && bytes + runBytes > READ_RUN_BYTES) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(run);
    bytes += runBytes;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}
