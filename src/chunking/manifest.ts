/**
 * Cuts a file into chunks and hashes them, streaming: chunk references are yielded in batches as
 * they are hashed, so a receiver can start fetching the start of a 100 GB file while the rest is
 * still being read. Memory is one read buffer, whatever the file size.
 */
import { readAt } from "../engine/file-io.js";
import { ErrorCode, TeleportError } from "../errors.js";
import { platformIo } from "../platform/io.js";
import { type ChunkRef, HASH_SIZE, MAX_CHUNK_SIZE } from "../wire/messages.js";
import type { Chunker } from "./chunker.js";
import { hashBytes, StreamingHash } from "./hash.js";

export interface FileDigest {
  size: number;
  chunkCount: number;
  /**
   * BLAKE3 over the concatenated chunk hashes: it names the whole file's content through its
   * chunk list (as Dropbox's content hash does) for the cost of hashing 32 bytes per chunk,
   * where a second pass over the data would double the host's hashing work. A hole of a sparse
   * file counts in it as its `holeHash`, in its place.
   */
  fileHash: Buffer;
}

/**
 * Holes shorter than this are read as data (zeros): a file pocked with small holes is chunked as
 * one run, not cut at every hole, and each hole costs one holeHash (0.67 ms here: BLAKE3 over
 * 4 MiB, median of 5 rounds of 200 calls).
 */
export const MIN_HOLE_BYTES = 1024 * 1024;

const HOLE_DOMAIN = "teleport hole v1";
/**
 * Longer than any chunk can be (clients refuse chunks over MAX_CHUNK_SIZE), so no chunk's hash
 * can equal a hole's: a chunk list with a hole never hashes like one with data in its place.
 */
let holePreimage: Buffer | undefined; // made on the first hole: most processes never see one

/**
 * What a hole of `length` bytes at `offset` contributes to a file hash: BLAKE3 over the domain,
 * the offset and the length, zero-padded past the largest chunk.
 */
export function holeHash(offset: number, length: number): Buffer {
  holePreimage ??= Buffer.alloc(MAX_CHUNK_SIZE + 1);
  const at = holePreimage.write(HOLE_DOMAIN, 0, "latin1");
  holePreimage.writeBigUInt64LE(BigInt(offset), at);
  holePreimage.writeBigUInt64LE(BigInt(length), at + 8);
  return hashBytes(holePreimage);
}

/**
 * The data ranges of a file open as `fd` whose first `size` bytes are listed, as [start, end)
 * pairs; holes under MIN_HOLE_BYTES count as data. With the native addon the holes come from
 * SEEK_DATA/SEEK_HOLE; without it the whole file is data.
 */
export function* sparseRanges(fd: number, size: number): Generator<[number, number]> {
  let pending: [number, number] | undefined;
  for (const [start, end] of platformIo.dataRanges(fd, size)) {
    if (pending === undefined) pending = [start < MIN_HOLE_BYTES ? 0 : start, end];
    else if (start - pending[1] < MIN_HOLE_BYTES) pending[1] = end;
    else {
      yield pending;
      pending = [start, end];
    }
  }
  if (pending !== undefined) {
    if (size - pending[1] < MIN_HOLE_BYTES) pending[1] = size;
    yield pending;
  } else if (size > 0 && size < MIN_HOLE_BYTES) {
    yield [0, size]; // all hole, but too small to be one
  }
}

/**
 * The file hash of a chunk list, built as chunk hashes arrive: they are gathered and hashed
 * 1,024 at a time, one native call instead of one per chunk. The buffer grows from a few hashes
 * and the streaming hasher is made only past 1,024: most files are a handful of chunks, and a
 * 32 KiB buffer and a hasher per file took ~0.1 s of a 20,000-file pull's main thread in a CPU
 * profile (`node --cpu-prof`), before the garbage they left.
 */
export class ChunkListHash {
  #hash: StreamingHash | undefined;
  #pending = Buffer.allocUnsafe(8 * HASH_SIZE);
  #filled = 0;

  /** A hole of `length` bytes at `offset` (see holeHash). */
  addHole(offset: number, length: number): void {
    this.add(holeHash(offset, length));
  }

  add(chunkHash: Uint8Array): void {
    if (this.#filled === this.#pending.length) {
      if (this.#pending.length < MAX_PENDING_HASHES * HASH_SIZE) {
        const larger = Buffer.allocUnsafe(this.#pending.length * 4);
        this.#pending.copy(larger, 0, 0, this.#filled);
        this.#pending = larger;
      } else {
        this.#hash ??= new StreamingHash();
        this.#hash.update(this.#pending);
        this.#filled = 0;
      }
    }
    this.#pending.set(chunkHash, this.#filled);
    this.#filled += HASH_SIZE;
  }

  /** BLAKE3 of the hashes added, in order: one call when they all fit the buffer. */
  digest(): Buffer {
    const pending = this.#pending.subarray(0, this.#filled);
    if (this.#hash === undefined) return hashBytes(pending);
    this.#hash.update(pending);
    return this.#hash.digest();
  }
}

const MAX_PENDING_HASHES = 1024;

/** The chunks and digest of bytes already in memory (a small file read whole). */
export function chunkBytes(data: Buffer, chunker: Chunker): { chunks: ChunkRef[]; digest: FileDigest } {
  const chunks: ChunkRef[] = [];
  cutAndHash(data, true, 0, chunker, chunks);
  const fileHash = new ChunkListHash();
  for (const chunk of chunks) fileHash.add(chunk.hash);
  return { chunks, digest: { size: data.length, chunkCount: chunks.length, fileHash: fileHash.digest() } };
}

/** Chunk lengths from one Chunker.cut: shared, as each call's are read before the next. */
const cutLengths = new Uint32Array(256);

/**
 * Cuts the chunks at the start of `data` (which starts at `offset` of its file), hashes them and
 * adds them to `chunks`; returns the bytes they cover. The bytes after them need more to decide.
 * All of a read's cuts are found in one call: one crossing into the addon's scan per read.
 */
function cutAndHash(
  data: Buffer,
  eof: boolean,
  offset: number,
  chunker: Chunker,
  chunks: ChunkRef[],
): number {
  let at = 0;
  let count = cutLengths.length;
  while (count === cutLengths.length && at < data.length) {
    count = chunker.cut(at === 0 ? data : data.subarray(at), eof, cutLengths);
    for (let i = 0; i < count; i++) {
      const size = cutLengths[i] as number;
      chunks.push({ offset: offset + at, size, hash: hashBytes(data.subarray(at, at + size)) });
      at += size;
    }
  }
  return at;
}

/** Drains a chunk listing (chunkFile, fileChunks): every chunk in order, and the file digest. */
export async function collectChunks(
  listing: AsyncGenerator<ChunkRef[], FileDigest>,
): Promise<{ chunks: ChunkRef[]; digest: FileDigest }> {
  const chunks: ChunkRef[] = [];
  let step = await listing.next();
  while (!step.done) {
    chunks.push(...step.value);
    step = await listing.next();
  }
  return { chunks, digest: step.value };
}

/** Reads are this many chunks at a time: fewer syscalls, and room for a content-defined cut. */
const CHUNKS_PER_READ = 4;

/**
 * Yields the chunks of the first `size` bytes of the file open as `fd` in order, then returns the
 * file digest. The holes of a sparse file (sparseRanges) are skipped: no chunk covers them, and
 * each counts in the file hash as its holeHash. Throws FILE_CHANGED if the file ends before
 * `size` bytes (truncated while read).
 */
export async function* chunkFile(
  fd: number,
  size: number,
  chunker: Chunker,
  signal?: AbortSignal,
): AsyncGenerator<ChunkRef[], FileDigest> {
  // Sized to the file when it is small: a 10 KB file must not cost a 4 MiB allocation.
  const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(chunker.maxChunkSize * CHUNKS_PER_READ, size)));
  const fileHash = new ChunkListHash();
  let chunkCount = 0;
  let listed = 0; // where the last range ended
  for (const [start, end] of sparseRanges(fd, size)) {
    if (start > listed) fileHash.addHole(listed, start - listed);
    for await (const batch of chunkRange(fd, start, end, buffer, chunker, signal)) {
      for (const chunk of batch) fileHash.add(chunk.hash);
      chunkCount += batch.length;
      yield batch;
    }
    listed = end;
  }
  if (size > listed) fileHash.addHole(listed, size - listed);
  return { size, chunkCount, fileHash: fileHash.digest() };
}

/** The chunks of bytes `start` to `end` of `fd`, cut and hashed in `buffer`. */
async function* chunkRange(
  fd: number,
  start: number,
  end: number,
  buffer: Buffer,
  chunker: Chunker,
  signal: AbortSignal | undefined,
): AsyncGenerator<ChunkRef[]> {
  let filled = 0; // bytes in buffer not yet assigned to a chunk
  let readOffset = start;
  let chunkOffset = start;
  while (chunkOffset < end) {
    signal?.throwIfAborted();
    const want = Math.min(buffer.length - filled, end - readOffset);
    if (want > 0) {
      const bytesRead = await readAt(fd, buffer, filled, want, readOffset);
      if (bytesRead === 0) {
        throw new TeleportError(
          ErrorCode.FILE_CHANGED,
          `file shrank while it was being read (expected ${end} bytes or more)`,
        );
      }
      filled += bytesRead;
      readOffset += bytesRead;
    }
    const eof = readOffset === end;
    const batch: ChunkRef[] = [];
    const at = cutAndHash(buffer.subarray(0, filled), eof, chunkOffset, chunker, batch);
    chunkOffset += at;
    if (at > 0 && at < filled) buffer.copy(buffer, 0, at, filled);
    filled -= at;
    if (batch.length > 0) yield batch;
  }
}
