/**
 * The host's file-state cache for the files a manifest reads whole (see WHOLE_READ_FILE_BYTES):
 * a file unchanged since it was indexed is listed from the index without a read; one hashed now
 * is recorded with many others in one transaction, not one each, as a transaction costs as much
 * as ~100 rows. A record not yet written only means the next manifest hashes that file again.
 */
import { type BigIntStats, fstatSync } from "node:fs";
import type { FileDigest } from "../chunking/manifest.js";
import { ErrorCode, TeleportError } from "../errors.js";
import { type ChunkIndex, identityOf, type RecordedFile } from "../store/chunk-index.js";
import type { ChunkRef } from "../wire/messages.js";

/** Files recorded per transaction. */
const FILES_PER_RECORD = 256;
/** Chunk references per query when a file's list is read back. */
const INDEX_BATCH = 1024;

/** A file's chunks and digest, as listed. */
export interface FileChunkList {
  chunks: ChunkRef[];
  digest: FileDigest;
}

/** A file open for a manifest, as the index knows it: its path on the host and its stats now. */
export interface IndexedLookup {
  path: string;
  stats: BigIntStats;
}

export class FileStates {
  readonly #index: ChunkIndex;
  readonly #chunker: string;
  #pending: RecordedFile[] = [];

  constructor(index: ChunkIndex, chunker: string) {
    this.#index = index;
    this.#chunker = chunker;
  }

  /**
   * The file open as `fd` at `path` (host path) of `size` bytes: its chunk list if the index
   * knows it unchanged, else what to `record` it by once hashed (undefined where it cannot be:
   * its size is not the one listed).
   */
  lookup(fd: number, path: string, size: number): FileChunkList | IndexedLookup | undefined {
    const stats = fstatSync(fd, { bigint: true });
    if (stats.size !== BigInt(size)) return undefined;
    const known = this.#index.lookupFile(path, stats, this.#chunker);
    if (known?.fileHash == null) return { path, stats };
    const chunks: ChunkRef[] = [];
    for (const batch of this.#index.chunksOf(known.id, INDEX_BATCH)) chunks.push(...batch);
    if (chunks.length !== known.chunkCount)
      throw new TeleportError(ErrorCode.FILE_CHANGED, `${path} was indexed again while it was listed`);
    return { chunks, digest: { size: known.size, chunkCount: known.chunkCount, fileHash: known.fileHash } };
  }

  /**
   * Records the chunk list of the file open as `fd` that `lookup` described, if it is still the
   * file it was then (else what was hashed may mix two versions).
   */
  record(fd: number, looked: IndexedLookup, listed: FileChunkList): void {
    const { path, stats } = looked;
    if (identityOf(fstatSync(fd, { bigint: true })) !== identityOf(stats)) return;
    this.#pending.push({ path, stats, chunker: this.#chunker, digest: listed.digest, chunks: listed.chunks });
    if (this.#pending.length >= FILES_PER_RECORD) this.flush();
  }

  /** Writes the records not yet written, in one transaction. */
  flush(): void {
    if (this.#pending.length === 0) return;
    const files = this.#pending;
    this.#pending = [];
    this.#index.recordFiles(files);
  }
}

/** Whether `lookup` found the file's chunk list in the index. */
export function isListed(found: FileChunkList | IndexedLookup): found is FileChunkList {
  return "chunks" in found;
}
