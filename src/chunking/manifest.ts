/**
 * Cuts a file into chunks and hashes them, streaming: chunk references are yielded in batches as
 * they are hashed, so a receiver can start fetching the start of a 100 GB file while the rest is
 * still being read. Memory is one read buffer, whatever the file size.
 */
import { readAt } from "../engine/file-io.js";
import { ErrorCode, TeleportError } from "../errors.js";
import { type ChunkRef, HASH_SIZE } from "../wire/messages.js";
import type { Chunker } from "./chunker.js";
import { hashBytes, StreamingHash } from "./hash.js";

export interface FileDigest {
  size: number;
  chunkCount: number;
  /**
   * BLAKE3 over the concatenated chunk hashes: it names the whole file's content through its
   * chunk list (as Dropbox's content hash does) for the cost of hashing 32 bytes per chunk,
   * where a second pass over the data would double the host's hashing work.
   */
  fileHash: Buffer;
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
  const fileHash = new ChunkListHash();
  let offset = 0;
  while (offset < data.length) {
    const size = chunker.nextChunkLength(data.subarray(offset), true);
    const hash = hashBytes(data.subarray(offset, offset + size));
    fileHash.add(hash);
    chunks.push({ offset, size, hash });
    offset += size;
  }
  return { chunks, digest: { size: data.length, chunkCount: chunks.length, fileHash: fileHash.digest() } };
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
 * file digest. Throws FILE_CHANGED if the file ends before `size` bytes (truncated while read).
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
  let filled = 0; // bytes in buffer not yet assigned to a chunk
  let readOffset = 0;
  let chunkOffset = 0;
  let chunkCount = 0;

  while (chunkOffset < size) {
    signal?.throwIfAborted();
    const want = Math.min(buffer.length - filled, size - readOffset);
    if (want > 0) {
      const bytesRead = await readAt(fd, buffer, filled, want, readOffset);
      if (bytesRead === 0) {
        throw new TeleportError(
          ErrorCode.FILE_CHANGED,
          `file shrank while it was being read (expected ${size} bytes)`,
        );
      }
      filled += bytesRead;
      readOffset += bytesRead;
    }
    const eof = readOffset === size;
    const batch: ChunkRef[] = [];
    let start = 0;
    for (;;) {
      const length = chunker.nextChunkLength(buffer.subarray(start, filled), eof);
      if (length === 0) break;
      const hash = hashBytes(buffer.subarray(start, start + length));
      fileHash.add(hash);
      batch.push({ offset: chunkOffset, size: length, hash });
      chunkOffset += length;
      start += length;
      chunkCount++;
      if (start === filled) break;
    }
    if (start > 0 && start < filled) buffer.copy(buffer, 0, start, filled);
    filled -= start;
    if (batch.length > 0) yield batch;
  }
  return { size, chunkCount, fileHash: fileHash.digest() };
}
