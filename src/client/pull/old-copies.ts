/**
 * The old copy of a file at the destination: what it holds, told by the index or, for a file
 * too small to be indexed, by reading and hashing it.
 */
import { closeSync, constants, lstatSync, openSync, readSync } from "node:fs";
import { open } from "node:fs/promises";
import type { Chunker } from "../../chunking/chunker.js";
import { chunkBytes } from "../../chunking/manifest.js";
import type { ChunkIndex, IndexedFile } from "../../store/chunk-index.js";
import { fileChunks } from "../../store/file-chunks.js";

export class OldCopies {
  readonly #index: ChunkIndex;
  readonly #chunker: Chunker;
  readonly #readLocally: (bytes: number) => void;
  readonly #signal: AbortSignal;

  /** `readLocally` is told of the bytes read. */
  constructor(
    index: ChunkIndex,
    chunker: Chunker,
    readLocally: (bytes: number) => void,
    signal: AbortSignal,
  ) {
    this.#index = index;
    this.#chunker = chunker;
    this.#readLocally = readLocally;
    this.#signal = signal;
  }

  /** The file hash of the unindexed file at `path`, if it is a regular file of `size` bytes. */
  hashOf(path: string, size: number): Buffer | undefined {
    const stats = lstatQuietly(path);
    if (stats === undefined || !stats.isFile() || stats.size !== BigInt(size)) return undefined;
    const data = Buffer.allocUnsafe(size);
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
    } catch {
      return undefined;
    }
    try {
      if (readSync(fd, data, 0, size, 0) !== size) return undefined;
    } catch {
      return undefined;
    } finally {
      closeSync(fd);
    }
    this.#readLocally(size);
    return chunkBytes(data, this.#chunker).digest.fileHash;
  }

  /** The old copy at `path` as indexed, indexed now if it was not (read and hashed once). */
  async indexed(path: string): Promise<IndexedFile | undefined> {
    const index = this.#index;
    const stats = lstatQuietly(path);
    if (stats === undefined || !stats.isFile()) return undefined;
    const known = index.lookupFile(path, stats, this.#chunker.id);
    if (known !== undefined) return known;
    const handle = await open(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0)).catch(() => undefined);
    if (handle === undefined) return undefined;
    try {
      const size = Number(stats.size);
      const listing = fileChunks(handle.fd, path, size, this.#chunker, index, this.#signal);
      while (!(await listing.next()).done) {}
      this.#readLocally(size);
    } catch {
      return undefined; // unreadable or changing: not a source
    } finally {
      await handle.close();
    }
    return index.lookupFile(path, stats, this.#chunker.id);
  }
}

function lstatQuietly(path: string) {
  try {
    return lstatSync(path, { bigint: true });
  } catch {
    return undefined;
  }
}
