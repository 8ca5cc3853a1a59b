/**
 * The host's side of GET_CHUNKS for one connection: the requested chunks, in order, as
 * CHUNK_DATA frames (CHUNK_ZSTD where compressed). Over TLS each group of runs is read into one
 * pooled buffer against the send budgets, the next group read while this one is sent; over a
 * plaintext stream chunks go straight from the page cache by sendfile, with no budget to take.
 */
import { fstatSync } from "node:fs";
import type { Socket } from "node:net";
import type { Connection } from "../engine/connection.js";
import { readvAt } from "../engine/file-io.js";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { type FileSlice, platformIo, type SocketSender } from "../platform/io.js";
import { FRAME_HEADER_SIZE, writeFrameHeader } from "../wire/frame.js";
import { CHUNK_DATA_HEADER_SIZE, type ChunkRequest, MAX_CHUNK_SIZE, MessageType } from "../wire/messages.js";
import type { ChunkCompression } from "./chunk-compression.js";
import {
  CHUNK_FRAME_PREFIX,
  type ChunkGroup,
  type ChunkRun,
  contiguousRuns,
  groupFrameBytes,
  piecesOf,
  runEnd,
  writeGroups,
} from "./chunk-groups.js";
import type { HostFaults } from "./faults.js";
import type { FileLookup } from "./file-lookup.js";
import type { OpenFiles } from "./open-files.js";
import { type RecentChunks, WHOLE_READ_FILE_BYTES } from "./recent-chunks.js";
import type { Lease, SendLeases } from "./send-leases.js";

/** Files a direct send holds open at once: a group of small files is sent in several. */
const OPEN_FILES_PER_SEND = 32;

/** What a connection's chunk sender works with. */
export interface ChunkSources {
  connection: Connection;
  /** A plaintext stream's socket, which sendfile writes to; undefined over TLS and QUIC. */
  plainSocket: Socket | undefined;
  openFiles: OpenFiles;
  /** Looks up what the files of one request are now, for the recent-chunk ring; closed after it. */
  lookupFiles: () => FileLookup;
  leases: SendLeases;
  /** Bytes of small files just read for a manifest, shared by all connections. */
  recent: RecentChunks;
  /** Throws if the file at a path may not be served on this connection (plaintext: unlisted). */
  checkServable: (path: string) => void;
  /** Undefined: the host does not compress. */
  compression: ChunkCompression | undefined;
  faults: HostFaults | undefined;
}

export class ChunkSender {
  readonly #sources: ChunkSources;
  readonly #connection: Connection;
  /** A plaintext stream's sendfile sender, made on its first GET_CHUNKS; undefined otherwise. */
  #sender: SocketSender | undefined;

  constructor(sources: ChunkSources) {
    this.#sources = sources;
    this.#connection = sources.connection;
  }

  /** Stops the sendfile sender, if one was made (the connection is closing). */
  close(): void {
    this.#sender?.close();
  }

  /** Sends the chunks of one GET_CHUNKS; `compressLevel` 0: none (the client's, negotiated). */
  async send(
    requestId: number,
    requests: readonly ChunkRequest[],
    compressLevel: number,
    signal: AbortSignal,
  ): Promise<void> {
    for (const request of requests) {
      if (request.size === 0 || request.size > MAX_CHUNK_SIZE) {
        throw new TeleportError(ErrorCode.PROTOCOL, `chunk size ${request.size} is out of range`);
      }
      this.#sources.checkServable(request.path);
    }
    const groups = writeGroups(contiguousRuns(requests));
    const sender =
      compressLevel === 0 && this.#sources.faults === undefined ? this.#plainSender() : undefined;
    if (sender !== undefined) {
      await this.#sendDirect(requestId, groups, sender, signal);
      return;
    }
    const lookup = this.#sources.lookupFiles();
    try {
      await this.#sendRead({ requestId, signal, lookup }, groups, compressLevel);
    } finally {
      lookup.close();
    }
  }

  /**
   * One group read ahead: the next group is read while this one is encrypted and sent. The wait
   * for queue space comes before each send, so the request ends (and END goes out) as soon as
   * its last group is queued.
   */
  async #sendRead(request: ReadRequest, groups: readonly ChunkGroup[], compressLevel: number): Promise<void> {
    const { faults, compression } = this.#sources;
    const signal = request.signal;
    const first = groups[0];
    let next: Promise<Lease> | undefined = first && this.#readAhead(request, first);
    let lease: Lease | undefined;
    try {
      for (const [g, group] of groups.entries()) {
        lease = await next;
        next = undefined;
        if (lease === undefined) return;
        const following = groups[g + 1];
        if (following !== undefined) next = this.#readAhead(request, following);
        if (faults !== undefined) await this.#injectFaults(faults, group, lease.frames);
        const frames =
          compressLevel > 0 && compression !== undefined
            ? await compression.compress(group, lease.frames, compressLevel)
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
  #readAhead(request: ReadRequest, group: ChunkGroup): Promise<Lease> {
    const reading = this.#readGroupFrames(request, group);
    reading.catch(() => {});
    return reading;
  }

  /**
   * Lays a group out as its CHUNK_DATA frames back to back in one pooled buffer, sent with one
   * TLS write of up to 2 MiB: each run is read with one readv, or copied from the chunks the
   * manifest just read (see RecentChunks). Frame by frame, Node's TLS socket gathers queued
   * frames into a writev that copies them all once more, and a write per small file costs a TLS
   * record and a system call each (docs/decisions.md, "One write per group of chunks").
   */
  async #readGroupFrames({ requestId, signal, lookup }: ReadRequest, group: ChunkGroup): Promise<Lease> {
    const lease = await this.#sources.leases.lease(groupFrameBytes(group), signal);
    const frames = lease.frames;
    try {
      let at = 0;
      for (const run of group) {
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
        if (!this.#copyRecent(run, targets, lookup)) await this.#readRun(run, targets);
      }
    } catch (err) {
      lease.release();
      throw err;
    }
    return lease;
  }

  /**
   * Fills `targets` from the recent-chunk cache if it holds every chunk of the run, read from
   * the file the run's path names now (looked up beneath its folder). The cache holds only files
   * a manifest read whole, none over WHOLE_READ_FILE_BYTES: a run ending past that needs no lookup.
   */
  #copyRecent(run: ChunkRun, targets: readonly Buffer[], lookup: FileLookup): boolean {
    if (runEnd(run) > WHOLE_READ_FILE_BYTES) return false;
    const recent = this.#sources.recent;
    const identity = lookup.identity(run[0].path);
    if (identity === undefined) return false; // the read that follows says why, or serves it
    for (const [i, request] of run.entries()) {
      const target = targets[i];
      if (target === undefined || !recent.copy(request.hash, identity, target)) return false;
    }
    return true;
  }

  async #readRun(run: ChunkRun, targets: Buffer[]): Promise<void> {
    const { path, offset } = run[0];
    const wanted = runEnd(run) - offset;
    const bytesRead = await this.#sources.openFiles.with(path, (fd) => readvAt(fd, targets, offset));
    if (bytesRead !== wanted) throw fileShorter(path);
  }

  async #injectFaults(faults: HostFaults, group: ChunkGroup, frames: Buffer): Promise<void> {
    let at = 0;
    for (const run of group) {
      for (const request of run) {
        await faults.beforeChunk?.(request, this.#connection);
        at += CHUNK_FRAME_PREFIX;
        faults.corruptChunk?.(request, frames.subarray(at, at + request.size));
        at += request.size;
      }
    }
  }

  /** The sender of a plaintext stream, where the platform has one (made on first use). */
  #plainSender(): SocketSender | undefined {
    const socket = this.#sources.plainSocket;
    if (socket !== undefined && this.#sender === undefined && !this.#connection.destroyed)
      this.#sender = platformIo.openSender(socket);
    return this.#sender;
  }

  /**
   * Sends chunks over a plaintext stream straight from the page cache: a group's frame headers
   * from one small buffer, their data by the sender's sendfile. No chunk byte is read into
   * memory, so no send budget is taken: the socket's buffer is all that is in flight.
   */
  async #sendDirect(
    requestId: number,
    groups: readonly ChunkGroup[],
    sender: SocketSender,
    signal: AbortSignal,
  ): Promise<void> {
    for (const group of groups.flatMap((runs) => piecesOf(runs, OPEN_FILES_PER_SEND))) {
      const headers = frameHeaders(requestId, group);
      const paths = group.map((run) => run[0].path);
      await this.#sources.openFiles.withAll(paths, async (fds) => {
        if (signal.aborted) return;
        const slices = fileSlices(group, fds);
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
}

/** One GET_CHUNKS being read and sent over TLS or QUIC. */
interface ReadRequest {
  requestId: number;
  signal: AbortSignal;
  lookup: FileLookup;
}

/** The CHUNK_DATA frame headers of a group's chunks, back to back, for a direct send. */
function frameHeaders(requestId: number, group: ChunkGroup): Buffer {
  const headers = Buffer.allocUnsafe(group.reduce((sum, run) => sum + run.length, 0) * CHUNK_FRAME_PREFIX);
  let at = 0;
  for (const run of group) {
    for (const request of run) {
      writeFrameHeader(headers, at, MessageType.CHUNK_DATA, requestId, CHUNK_DATA_HEADER_SIZE + request.size);
      request.hash.copy(headers, at + FRAME_HEADER_SIZE);
      at += CHUNK_FRAME_PREFIX;
    }
  }
  return headers;
}

/**
 * Where a group's chunks lie in the files open as `fds` (one per run, in order). Each file must
 * still hold all its run's chunks, or FILE_CHANGED before a byte of the group is sent.
 */
function fileSlices(group: ChunkGroup, fds: readonly number[]): FileSlice[] {
  const slices: FileSlice[] = [];
  for (const [r, run] of group.entries()) {
    const fd = fds[r];
    if (fd === undefined || fstatSync(fd).size < runEnd(run)) throw fileShorter(run[0].path);
    for (const request of run) slices.push({ fd, offset: request.offset, length: request.size });
  }
  return slices;
}

function fileShorter(path: string): TeleportError {
  return new TeleportError(ErrorCode.FILE_CHANGED, `"${path}" is shorter than it was when listed`);
}
