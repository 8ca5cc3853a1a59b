/**
 * The old copy of a file at the destination: what it holds, told by the index or, for a file
 * too small to be indexed, by reading and hashing it. Old copies are opened relative to their
 * folder by the destination, so a folder a local user swaps for a symlink is not read through
 * (which would tell the host, by what the pull then asks for, what the file elsewhere holds).
 */
import { type BigIntStats, closeSync, readSync } from "node:fs";
import type { Chunker } from "../chunking/chunker.js";
import { chunkBytes } from "../chunking/manifest.js";
import type { ChunkIndex, IndexedFile } from "../store/chunk-index.js";
import { fileChunks } from "../store/file-chunks.js";

/** Opens the old copy at a destination path if it is a regular file (Destination.openOldCopy). */
export type OldCopyOpener = (path: string) => { fd: number; stats: BigIntStats } | undefined;

export class OldCopies {
  readonly #index: ChunkIndex;
  readonly #chunker: Chunker;
  readonly #open: OldCopyOpener;
  readonly #readLocally: (bytes: number) => void;
  readonly #signal: AbortSignal;

  /** `readLocally` is told of the bytes read. */
  constructor(options: {
    index: ChunkIndex;
    chunker: Chunker;
    open: OldCopyOpener;
    readLocally: (bytes: number) => void;
    signal: AbortSignal;
  }) {
    this.#index = options.index;
    this.#chunker = options.chunker;
    this.#open = options.open;
    this.#readLocally = options.readLocally;
    this.#signal = options.signal;
  }

  /** The file hash of the unindexed file at `path`, if it is a regular file of `size` bytes. */
  hashOf(path: string, size: number): Buffer | undefined {
    const old = this.#open(path);
    if (old === undefined) return undefined;
    const data = Buffer.allocUnsafe(size);
    try {
      if (old.stats.size !== BigInt(size) || readSync(old.fd, data, 0, size, 0) !== size) return undefined;
    } catch {
      return undefined;
    } finally {
      closeSync(old.fd);
    }
    this.#readLocally(size);
    return chunkBytes(data, this.#chunker).digest.fileHash;
  }

  /** The old copy at `path` as indexed, indexed now if it was not (read and hashed once). */
  async indexed(path: string): Promise<IndexedFile | undefined> {
    const index = this.#index;
    const old = this.#open(path);
    if (old === undefined) return undefined;
    try {
      const known = index.lookupFile(path, old.stats, this.#chunker.id);
      if (known !== undefined) return known;
      const size = Number(old.stats.size);
      const listing = fileChunks(old.fd, path, size, this.#chunker, index, this.#signal);
      while (!(await listing.next()).done) {}
      this.#readLocally(size);
    } catch {
      return undefined; // unreadable or changing: not a source
    } finally {
      closeSync(old.fd);
    }
    return index.lookupFile(path, old.stats, this.#chunker.id);
  }
}
