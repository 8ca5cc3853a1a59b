/**
 * The chunk list of a file, through the index: read from it when the file is unchanged since it
 * was indexed, else computed by reading and hashing the file and recorded on the way, so the next
 * caller — the next client of a host, the next pull into the same folder — does not re-read it.
 */
import { fstatSync } from "node:fs";
import type { Chunker } from "../chunking/chunker.js";
import { chunkFile, type FileDigest } from "../chunking/manifest.js";
import { ErrorCode, TeleportError } from "../errors.js";
import type { ChunkRef } from "../wire/messages.js";
import { type ChunkIndex, identityOf } from "./chunk-index.js";

/** Chunk references per batch when read back from the index. */
const INDEX_BATCH = 1024;
/** Chunk rows per transaction while a file is hashed: a transaction costs as much as ~100 rows. */
const ROWS_PER_TRANSACTION = 1024;

/**
 * Yields the chunks of the first `size` bytes of the file open as `fd` at `path`, then returns
 * its digest. The result is indexed only if the file is `size` bytes long and its identity
 * did not change while it was read.
 */
export async function* fileChunks(
  fd: number,
  path: string,
  size: number,
  chunker: Chunker,
  index: ChunkIndex | undefined,
  signal?: AbortSignal,
): AsyncGenerator<ChunkRef[], FileDigest> {
  const stats = fstatSync(fd, { bigint: true });
  const indexable = index !== undefined && stats.size === BigInt(size);
  const known = indexable ? index.lookupFile(path, stats, chunker.id) : undefined;
  if (index !== undefined && known?.fileHash) {
    let listed = 0;
    for (const batch of index.chunksOf(known.id, INDEX_BATCH)) {
      listed += batch.length;
      yield batch;
    }
    // Forgotten between batches (indexed again): the next run of the pull lists it anew.
    if (listed !== known.chunkCount)
      throw new TeleportError(ErrorCode.FILE_CHANGED, `${path} was indexed again while it was listed`);
    return { size: known.size, chunkCount: known.chunkCount, fileHash: known.fileHash };
  }
  // A file of fewer than ROWS_PER_TRANSACTION chunks is recorded in one transaction once read;
  // a longer one is started in the index when its first rows are due, and recorded as it goes.
  let fileId: number | undefined;
  let indexed = false;
  try {
    const chunks = chunkFile(fd, size, chunker, signal);
    let unrecorded: ChunkRef[] = [];
    let step = await chunks.next();
    while (!step.done) {
      if (indexable) {
        unrecorded.push(...step.value);
        if (unrecorded.length >= ROWS_PER_TRANSACTION) {
          fileId ??= index.startFile(path, stats, chunker.id);
          addChunks(index, fileId, unrecorded);
          unrecorded = [];
        }
      }
      yield step.value;
      step = await chunks.next();
    }
    if (indexable && identityOf(fstatSync(fd, { bigint: true })) === identityOf(stats)) {
      if (fileId === undefined) {
        index.recordFiles([{ path, stats, chunker: chunker.id, digest: step.value, chunks: unrecorded }]);
      } else {
        addChunks(index, fileId, unrecorded);
        index.finishFile(fileId, path, stats, step.value);
      }
      indexed = true;
    }
    return step.value;
  } finally {
    if (fileId !== undefined && !indexed) index?.forget(fileId);
  }
}

function addChunks(index: ChunkIndex, fileId: number, chunks: readonly ChunkRef[]): void {
  index.addChunks(chunks.map((chunk) => [fileId, chunk] as const));
}
