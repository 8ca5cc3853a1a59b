/**
 * Where a data stream's verified chunks go: chunks that lie back to back in one file are
 * gathered and written together, a write slice at a time, at their offsets in the file
 * descriptors their batch lent (see stream-protocol.ts).
 */
import { writeSync, writevSync } from "node:fs";
import type { BufferPool } from "../../engine/buffer-pool.js";
import { ErrorCode, TeleportError, toTeleportError } from "../../errors.js";
import { BLOCK_BYTES } from "../../platform/io.js";
import type { ChunkWrite } from "./stream-protocol.js";

/**
 * Page-cache writes are issued 256 KiB at a time: chunks that arrive back to back are gathered
 * into one writev up to that size, larger ones are split. Larger writes cost more system time
 * per byte here, and smaller ones more per call (docs/decisions.md, "Write slices").
 */
export const WRITE_SLICE_BYTES = 256 * 1024;

/** The block placed chunks start on (a mount's pack, pack-files.ts PACK_BLOCK): a gap shorter is padded. */
const PAD_BLOCK = BLOCK_BYTES;
const PAD_ZEROS = Buffer.alloc(PAD_BLOCK);

/** Verified chunks that lie back to back in one file, not yet written. */
export class GatheredWrites {
  readonly #pool: BufferPool;
  #fd = -1;
  #position = 0;
  #bytes = 0;
  #buffers: Buffer[] = [];
  #path = "";
  /** Whether the gathered chunks were placed (`at`), not written at their offsets. */
  #placed = false;
  /** Of the gathered bytes, those padding placed chunks (not counted as written). */
  #padBytes = 0;
  /** Bytes written so far. */
  written = 0;
  /**
   * The first write that failed. Chunks gathered may belong to any batch open on the connection,
   * so after a failed write none of them can be reported done.
   */
  error: TeleportError | undefined;

  /** `pool` is where the chunk buffers came from: they go back to it once written. */
  constructor(pool: BufferPool) {
    this.#pool = pool;
  }

  add(request: ChunkWrite, data: Buffer): void {
    const position = request.at ?? request.offset;
    const pad = this.#padBefore(request, position);
    if (pad > 0) {
      this.#buffers.push(PAD_ZEROS.subarray(0, pad));
      this.#bytes += pad;
      this.#padBytes += pad;
    }
    const follows = request.fd === this.#fd && position === this.#position + this.#bytes;
    if (!follows || this.#bytes + data.length > WRITE_SLICE_BYTES) this.flush();
    if (this.#buffers.length === 0) {
      this.#placed = request.at !== undefined;
      this.#fd = request.fd;
      this.#position = position;
      this.#path = request.path;
    }
    this.#buffers.push(data);
    this.#bytes += data.length;
  }

  /**
   * Zeros that close the gap to a placed chunk (`at`, a mount's pack) starting at the next block
   * after the gathered ones: the gap is the tail of the last chunk's block, so one writev still
   * covers them. Chunks written at their offsets (a pull) are never padded.
   */
  #padBefore(request: ChunkWrite, position: number): number {
    if (request.at === undefined || !this.#placed || request.fd !== this.#fd) return 0;
    const gap = position - (this.#position + this.#bytes);
    return gap > 0 && gap < PAD_BLOCK && position % PAD_BLOCK === 0 ? gap : 0;
  }

  /** Writes what is gathered and gives its buffers back, even if the write fails. */
  flush(): void {
    const fd = this.#fd;
    const position = this.#position;
    const buffers = this.#buffers;
    const path = this.#path;
    const bytes = this.#bytes - this.#padBytes;
    this.#buffers = [];
    this.#bytes = 0;
    this.#padBytes = 0;
    this.#fd = -1;
    try {
      const [only] = buffers;
      if (buffers.length === 1 && only !== undefined) writeAt(fd, only, position, path);
      else if (buffers.length > 1) writeGathered(fd, buffers, position, path);
      this.written += bytes;
    } catch (err) {
      this.error ??= toTeleportError(err);
      throw this.error;
    } finally {
      for (const buffer of buffers) this.#pool.release(buffer);
    }
  }

  /** Drops what is gathered: its batch failed, so its bytes do not count. */
  discard(): void {
    for (const buffer of this.#buffers.splice(0)) this.#pool.release(buffer);
    this.#bytes = 0;
    this.#padBytes = 0;
    this.#fd = -1;
  }
}

function writeGathered(fd: number, buffers: Buffer[], position: number, wirePath: string): void {
  let written: number;
  try {
    written = writevSync(fd, buffers, position);
  } catch (err) {
    throw toTeleportError(err, `writing "${wirePath}"`);
  }
  // A short write (a disk filling up) is continued piece by piece, never taken for the whole.
  let at = position;
  for (const buffer of buffers) {
    const done = Math.min(buffer.length, Math.max(0, written - (at - position)));
    if (done < buffer.length) writeAt(fd, buffer.subarray(done), at + done, wirePath);
    at += buffer.length;
  }
}

/**
 * Writes synchronously: the thread has nothing else to do meanwhile, and it cost less CPU and
 * memory than writes handed to libuv's thread pool (docs/decisions.md, "Synchronous writes").
 */
function writeAt(fd: number, data: Buffer, position: number, wirePath: string): void {
  try {
    for (let at = 0; at < data.length; ) {
      const length = Math.min(WRITE_SLICE_BYTES, data.length - at);
      // A short write (a disk filling up) is continued, never taken for the whole slice.
      const written = writeSync(fd, data, at, length, position + at);
      if (written <= 0) throw new TeleportError(ErrorCode.IO, `wrote nothing at offset ${position + at}`);
      at += written;
    }
  } catch (err) {
    throw toTeleportError(err, `writing "${wirePath}"`);
  }
}
