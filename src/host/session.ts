/**
 * One client connection on the host: authenticates the client, then serves its requests
 * concurrently, each under its own credit window and AbortSignal. Everything read from the
 * client is decoded with bounded codecs and every path goes through the Share.
 */
import { readSync } from "node:fs";
import type { TLSSocket } from "node:tls";
import type { Chunker } from "../chunking/chunker.js";
import { hashBytes } from "../chunking/hash.js";
import { chunkBytes, type FileDigest } from "../chunking/manifest.js";
import type { BufferPool } from "../engine/buffer-pool.js";
import { Connection, encodeFrame } from "../engine/connection.js";
import { CreditGate } from "../engine/credit.js";
import { closeQuietly, readAt, readvAt } from "../engine/file-io.js";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import type { ChunkIndex } from "../store/chunk-index.js";
import { fileChunks } from "../store/file-chunks.js";
import { verifyAuthProof } from "../transport/tls.js";
import { type Codec, decodeMessage } from "../wire/codec.js";
import { FRAME_HEADER_SIZE, writeFrameHeader } from "../wire/frame.js";
import {
  CHUNK_DATA_HEADER_SIZE,
  type ChunkRef,
  type ChunkRequest,
  chunksCodec,
  creditCodec,
  type Entry,
  EntryKind,
  emptyCodec,
  entriesCodec,
  entryCodec,
  entryErrorCodec,
  Feature,
  fileEndCodec,
  getChunksRequestCodec,
  helloCodec,
  listRequestCodec,
  MAX_CHUNK_SIZE,
  MAX_ENTRIES_PER_FRAME,
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
import { OpenFiles, openFileAt } from "./open-files.js";
import type { RecentChunks } from "./recent-chunks.js";
import { isWalkFailure, type Share, type WalkFailure } from "./share.js";

/** Fault injection for tests of the client's defences; never set by the CLI. */
export interface HostFaults {
  /** Called with each chunk about to be sent; may change its bytes in place. */
  corruptChunk?: (request: ChunkRequest, data: Buffer) => void;
  /**
   * Awaited before each chunk is sent (to slow a transfer down, or act in the middle of it, such
   * as cutting the connection that carries it).
   */
  beforeChunk?: (request: ChunkRequest, connection: { destroy(): void }) => Promise<void>;
}

export interface SessionContext {
  share: Share;
  secret: Buffer;
  chunker: Chunker;
  pool: BufferPool;
  idleTimeoutMs: number;
  faults: HostFaults | undefined;
  /** Bytes of small files just read for a manifest, shared by all connections. */
  recent: RecentChunks;
  /** Chunk lists of files already hashed (the file-state cache), shared by all connections. */
  index: ChunkIndex | undefined;
  /** Time to send HELLO once TLS is up. */
  handshakeTimeoutMs: number;
  /** Wrong secrets per address, shared by all connections. */
  authLimiter: AuthLimiter;
  /** Told when a connection ends with an error (the CLI logs it). */
  onSessionError: ((remote: string, error: TeleportError) => void) | undefined;
}

const CHUNK_FRAME_PREFIX = FRAME_HEADER_SIZE + CHUNK_DATA_HEADER_SIZE;
const RANGE_FRAME_PREFIX = FRAME_HEADER_SIZE + RANGE_DATA_HEADER_SIZE;
/** Files at most this large are hashed ahead of their turn in a manifest (see #manifest). */
/**
 * Files up to this size are hashed each time they are listed, never looked up in the index:
 * opening, reading, closing and hashing a 10 KB file took 12-18 us (3 rounds of 2,000 files),
 * finding its chunk list in the index (two queries) ~87 us per file in a CPU profile of a host
 * serving 20,000 small files.
 */
const UNINDEXED_FILE_BYTES = 16 * 1024;
/** Back-to-back chunks of one file are read together, up to this many bytes. */
const READ_RUN_BYTES = 2 * 1024 * 1024;
/** A range read is sent as hashed pieces of at most this size. */
const RANGE_PIECE_BYTES = 1024 * 1024;
const SMALL_FILE_BYTES = 4 * 1024 * 1024;
const PREFETCHED_FILES = 16;

interface FileManifest {
  chunks: ChunkRef[];
  digest: FileDigest;
}

/** Requests one connection may have open at once; more is a protocol error. */
const MAX_OPEN_REQUESTS = 256;
/** Largest request frame accepted from a client (a GET_CHUNKS with long paths). */
const MAX_REQUEST_BODY = 1024 * 1024;
/** Chunk references per CHUNKS frame (~45 KB), well inside any credit window. */
const CHUNK_REFS_PER_FRAME = 1024;
/** Bytes of entries per ENTRIES frame. */
const RESPONSE_FRAME_TARGET = 48 * 1024;

/** An entry walked and, for a small file, being hashed ahead of its turn. */
interface Ahead {
  entry: Entry;
  absolutePath: string;
  manifest: Promise<FileManifest> | undefined;
}

/** Failures of one entry that leave the rest of a manifest sound. */
const ENTRY_FAILURES: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.PERMISSION,
  ErrorCode.NOT_FOUND,
  ErrorCode.FILE_CHANGED,
  ErrorCode.IO,
]);

/** What this host can do of what a client offers in HELLO. */
const SUPPORTED_FEATURES = Feature.ENTRY_ERRORS;

interface OpenRequest {
  abort: AbortController;
  credit: CreditGate;
}

export class HostSession {
  readonly #context: SessionContext;
  readonly #connection: Connection;
  readonly #requests = new Map<number, OpenRequest>();
  readonly #openFiles: OpenFiles;
  readonly #socket: TLSSocket;
  #authenticated = false;
  /** Features both sides have (HELLO's offer, masked by SUPPORTED_FEATURES). */
  #features = 0;
  readonly #authTimer: NodeJS.Timeout;

  constructor(socket: TLSSocket, context: SessionContext) {
    this.#socket = socket;
    this.#context = context;
    this.#openFiles = new OpenFiles((wirePath) => context.share.resolveFile(wirePath).absolutePath);
    this.#connection = new Connection(
      socket,
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
      this.#context.onSessionError?.(`${this.#socket.remoteAddress}:${this.#socket.remotePort}`, error);
    for (const request of this.#requests.values()) request.abort.abort();
    this.#requests.clear();
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
    const address = this.#socket.remoteAddress ?? "";
    const { authLimiter, secret } = this.#context;
    const waitMs = authLimiter.refusedFor(address);
    if (waitMs > 0) {
      throw new TeleportError(
        ErrorCode.AUTH,
        `too many wrong secrets from ${address}: refused for ${Math.ceil(waitMs / 1000)} s more`,
      );
    }
    if (!verifyAuthProof(this.#socket, secret, hello.authProof)) {
      authLimiter.failed(address);
      throw new TeleportError(ErrorCode.AUTH, "the link's secret was not accepted");
    }
    clearTimeout(this.#authTimer);
    this.#authenticated = true;
    this.#features = hello.features & SUPPORTED_FEATURES;
    this.#connection.send(MessageType.WELCOME, 0, welcomeCodec, {
      version: Math.min(PROTOCOL_VERSION, hello.maxVersion),
      features: this.#features,
      shareName: this.#context.share.name,
      maxChunkSize: MAX_CHUNK_SIZE,
    });
  }

  #dispatch(type: number, requestId: number, body: Buffer): void {
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
        const { chunks } = decodeMessage(getChunksRequestCodec, body);
        this.#serve(requestId, Number.MAX_SAFE_INTEGER, (open) => this.#getChunks(requestId, chunks, open));
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

  /**
   * Streams the walk of `path`. Small files are hashed up to PREFETCHED_FILES ahead of the one
   * being sent, concurrently, so a tree of many small files is not one open-read-hash-close round
   * trip after another; large files stream chunk by chunk in walk order.
   */
  async #manifest(requestId: number, path: string, open: OpenRequest): Promise<void> {
    const signal = open.abort.signal;
    const batch = new EntryBatch((entries) =>
      this.#sendCredited(requestId, open, MessageType.ENTRIES, entriesCodec, { entries }),
    );
    const walk = this.#context.share.walk(path, signal);
    const ahead: (Ahead | WalkFailure)[] = [];
    let walked = false;
    try {
      for (;;) {
        while (!walked && ahead.length < PREFETCHED_FILES) {
          const step = await walk.next();
          if (step.done) {
            walked = true;
            break;
          }
          if (isWalkFailure(step.value)) {
            ahead.push(step.value);
            continue;
          }
          const { entry, absolutePath } = step.value;
          const small = entry.kind === EntryKind.FILE && entry.size <= SMALL_FILE_BYTES;
          const manifest = small ? this.#wholeFileManifest(entry, absolutePath, signal) : undefined;
          manifest?.catch(() => {}); // awaited in order below; never an unhandled rejection
          ahead.push({ entry, absolutePath, manifest });
        }
        const next = ahead.shift();
        if (next === undefined) break;
        if (isWalkFailure(next)) {
          await batch.flush();
          await this.#entryFailed(requestId, open, next.path, next.failure);
          continue;
        }
        const { entry, absolutePath, manifest } = next;
        if (entry.kind !== EntryKind.FILE) {
          await batch.add(entry);
          continue;
        }
        await batch.flush();
        if (manifest === undefined) {
          await this.#sendLargeFile(requestId, open, entry, absolutePath);
          continue;
        }
        let listed: FileManifest;
        try {
          listed = await manifest;
        } catch (err) {
          await this.#entryFailed(requestId, open, entry.path, err);
          continue;
        }
        await this.#sendCredited(requestId, open, MessageType.FILE_BEGIN, entryCodec, entry);
        if (listed.chunks.length > 0) {
          await this.#sendCredited(requestId, open, MessageType.CHUNKS, chunksCodec, {
            chunks: listed.chunks,
          });
        }
        await this.#sendCredited(requestId, open, MessageType.FILE_END, fileEndCodec, listed.digest);
      }
    } finally {
      await walk.return(undefined); // closes the walk's open folders when it stops early
    }
    await batch.flush();
  }

  /**
   * The complete chunk list of a small file, from the index or by hashing it. It is opened at
   * the path the walk found it (walks descend only into real folders, so no symlink needs
   * resolving); a file up to UNINDEXED_FILE_BYTES is read whole, and its bytes are kept for the
   * GET_CHUNKS that will likely follow (see RecentChunks).
   */
  async #wholeFileManifest(entry: Entry, absolutePath: string, signal: AbortSignal): Promise<FileManifest> {
    const fd = openFileAt(absolutePath, entry.path);
    try {
      if (entry.size <= UNINDEXED_FILE_BYTES) return this.#readTinyFile(entry, fd);
      const chunks: ChunkRef[] = [];
      const listing = this.#fileChunks(entry, fd, signal);
      let step = await listing.next();
      while (!step.done) {
        chunks.push(...step.value);
        step = await listing.next();
      }
      return { chunks, digest: step.value };
    } finally {
      closeQuietly(fd);
    }
  }

  #readTinyFile(entry: Entry, fd: number): FileManifest {
    const data = this.#context.recent.reserve(entry.size);
    if (readSync(fd, data, 0, entry.size, 0) !== entry.size) {
      throw new TeleportError(ErrorCode.FILE_CHANGED, `"${entry.path}" shrank while it was being read`);
    }
    const manifest = chunkBytes(data, this.#context.chunker);
    for (const chunk of manifest.chunks) {
      this.#context.recent.add(chunk.hash, data.subarray(chunk.offset, chunk.offset + chunk.size));
    }
    return manifest;
  }

  /** A large file's manifest, streamed as it is hashed (or read from the index). */
  async #sendLargeFile(
    requestId: number,
    open: OpenRequest,
    entry: Entry,
    absolutePath: string,
  ): Promise<void> {
    let fd: number;
    try {
      fd = openFileAt(absolutePath, entry.path);
    } catch (err) {
      await this.#entryFailed(requestId, open, entry.path, err);
      return;
    }
    try {
      await this.#sendCredited(requestId, open, MessageType.FILE_BEGIN, entryCodec, entry);
      await this.#sendFileChunks(requestId, open, entry, fd);
    } finally {
      closeQuietly(fd);
    }
  }

  /**
   * An entry of a manifest that could not be read: an ENTRY_ERROR in its place, and the manifest
   * goes on, when the client understands them and the failure is the entry's own (its
   * permissions, a file removed or changed since it was listed). Anything else fails the request.
   */
  async #entryFailed(requestId: number, open: OpenRequest, path: string, err: unknown): Promise<void> {
    const error = toTeleportError(err);
    if ((this.#features & Feature.ENTRY_ERRORS) === 0 || !ENTRY_FAILURES.has(error.code)) throw error;
    const failure = { path, code: error.code, message: error.detail };
    await this.#sendCredited(requestId, open, MessageType.ENTRY_ERROR, entryErrorCodec, failure);
  }

  /** CHUNKS frames and FILE_END for one file, from the index or by hashing it now. */
  async #sendFileChunks(requestId: number, open: OpenRequest, entry: Entry, fd: number): Promise<void> {
    const listing = this.#fileChunks(entry, fd, open.abort.signal);
    let step = await listing.next();
    while (!step.done) {
      for (let i = 0; i < step.value.length; i += CHUNK_REFS_PER_FRAME) {
        const chunks = step.value.slice(i, i + CHUNK_REFS_PER_FRAME);
        await this.#sendCredited(requestId, open, MessageType.CHUNKS, chunksCodec, { chunks });
      }
      step = await listing.next();
    }
    await this.#sendCredited(requestId, open, MessageType.FILE_END, fileEndCodec, step.value);
  }

  /** The chunk list of a file from the index, or by hashing it (see UNINDEXED_FILE_BYTES). */
  #fileChunks(entry: Entry, fd: number, signal: AbortSignal): AsyncGenerator<ChunkRef[], FileDigest> {
    const { share, chunker } = this.#context;
    const index = entry.size > UNINDEXED_FILE_BYTES ? this.#context.index : undefined;
    return fileChunks(fd, share.localPath(entry.path), entry.size, chunker, index, signal);
  }

  async #getChunks(requestId: number, requests: ChunkRequest[], open: OpenRequest): Promise<void> {
    for (const request of requests) {
      if (request.size === 0 || request.size > MAX_CHUNK_SIZE) {
        throw new TeleportError(ErrorCode.PROTOCOL, `chunk size ${request.size} is out of range`);
      }
    }
    const pool = this.#context.pool;
    const groups = writeGroups(contiguousRuns(requests));
    // One group read ahead: the next group is read while this one is encrypted and sent. The
    // wait for queue space comes before each send, so the request ends (and END goes out) as
    // soon as its last group is queued.
    let next: Promise<Buffer> | undefined = groups[0] && this.#readGroupFrames(requestId, groups[0]);
    let frames: Buffer | undefined;
    try {
      for (let g = 0; g < groups.length; g++) {
        frames = await (next as Promise<Buffer>);
        next = undefined;
        const following = groups[g + 1];
        if (following !== undefined) next = this.#readGroupFrames(requestId, following);
        const faults = this.#context.faults;
        if (faults !== undefined) await this.#injectFaults(faults, groups[g] as ChunkRequest[][], frames);
        await this.#connection.whenWritable();
        if (open.abort.signal.aborted) return;
        const sending = frames;
        frames = undefined;
        this.#connection.sendOwnedFrame(sending, () => pool.release(sending));
      }
    } finally {
      if (frames !== undefined) pool.release(frames);
      next?.then(
        (unsent) => pool.release(unsent),
        () => {},
      );
    }
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
  async #readGroupFrames(requestId: number, runs: ChunkRequest[][]): Promise<Buffer> {
    const pool = this.#context.pool;
    let total = 0;
    for (const run of runs) for (const request of run) total += CHUNK_FRAME_PREFIX + request.size;
    const frames = pool.acquire(total);
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
      pool.release(frames);
      throw err;
    }
    return frames;
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
    const pool = this.#context.pool;
    let position = offset;
    const end = offset + length;
    while (position < end) {
      // Pieces are aligned to RANGE_PIECE_BYTES, so the same range is always hashed the same way.
      const pieceEnd = Math.min(end, (Math.floor(position / RANGE_PIECE_BYTES) + 1) * RANGE_PIECE_BYTES);
      const size = pieceEnd - position;
      await open.credit.take(RANGE_DATA_HEADER_SIZE + size, open.abort.signal);
      const frame = pool.acquire(RANGE_FRAME_PREFIX + size);
      try {
        await this.#readExactly(path, frame, RANGE_FRAME_PREFIX, size, position);
      } catch (err) {
        pool.release(frame);
        throw err;
      }
      const data = frame.subarray(RANGE_FRAME_PREFIX);
      writeFrameHeader(frame, 0, MessageType.RANGE_DATA, requestId, RANGE_DATA_HEADER_SIZE + size);
      const header = { offset: position, hash: hashBytes(data) };
      rangeDataHeaderCodec.encode(
        { start: FRAME_HEADER_SIZE, end: RANGE_FRAME_PREFIX, buffer: frame },
        header,
      );
      this.#connection.sendOwnedFrame(frame, () => pool.release(frame));
      position = pieceEnd;
      await this.#connection.whenWritable();
    }
  }
}

/** Collects entries into frames of a bounded size. */
class EntryBatch {
  readonly #send: (entries: Entry[]) => Promise<void>;
  #entries: Entry[] = [];
  #bytes = 0;

  constructor(send: (entries: Entry[]) => Promise<void>) {
    this.#send = send;
  }

  async add(entry: Entry): Promise<void> {
    this.#entries.push(entry);
    this.#bytes += 40 + Buffer.byteLength(entry.path) + Buffer.byteLength(entry.linkTarget);
    if (this.#bytes >= RESPONSE_FRAME_TARGET || this.#entries.length >= MAX_ENTRIES_PER_FRAME)
      await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#entries.length === 0) return;
    const entries = this.#entries;
    this.#entries = [];
    this.#bytes = 0;
    await this.#send(entries);
  }
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
