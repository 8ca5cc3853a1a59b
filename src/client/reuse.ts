/**
 * Reusing bytes this machine already has. `LocalChunks` answers "where is a chunk with this hash,
 * in a file that is still as it was indexed?"; `CopyRun` gathers consecutive chunks that sit
 * back to back in one source file and land back to back in the file being written, so a shifted
 * old copy (bytes inserted near the start) is copied in a few large reads and writes; `copyRun`
 * copies one, verifying every chunk's hash on the way: an index row that lies, or a file changed
 * in a way its identity does not show, costs a network fetch, never wrong output.
 */
import { lstatSync, write } from "node:fs";
import { constants, type FileHandle, open } from "node:fs/promises";
import { promisify } from "node:util";
import { hashBytes } from "../chunking/hash.js";
import { type ChunkIndex, type ChunkSource, identityOf, inodeOf } from "../store/chunk-index.js";
import type { ChunkRef } from "../wire/messages.js";

/** Largest copy run: read, verified and written as one. */
export const COPY_RUN_BYTES = 8 * 1024 * 1024;
/**
 * Reads and writes go 256 KiB at a time: on these VMs one 8 MiB write costs several times the
 * system time of 32 writes of 256 KiB (see WRITE_SLICE_BYTES in streams.ts).
 */
const IO_SLICE_BYTES = 256 * 1024;
/** Files whose identity is remembered during a pull (each an lstat). */
const IDENTITY_CACHE_SIZE = 256;

interface Identity {
  identity: string;
  inode: string;
}

export class LocalChunks {
  readonly #index: ChunkIndex;
  readonly #identities = new Map<string, Identity | null>();

  constructor(index: ChunkIndex) {
    this.#index = index;
  }

  /**
   * A place holding the chunk with `hash`, other than the file `excludeFileId`, whose file is
   * unchanged since it was indexed (a download in progress: still the same inode). Sources found
   * stale are dropped from the index.
   */
  find(hash: Buffer, excludeFileId?: number): ChunkSource | undefined {
    for (const source of this.#index.locate(hash)) {
      if (source.fileId === excludeFileId) continue;
      const now = this.#identity(source.path);
      const valid =
        now !== null && (source.partial ? now.inode === source.inode : now.identity === source.identity);
      if (valid) return source;
      // A download in progress may be another pull's, still writing: only complete files are dropped.
      if (!source.partial) this.#index.forget(source.fileId);
    }
    return undefined;
  }

  /** Forgets what is known of `path` (this pull just wrote it). */
  changed(path: string): void {
    this.#identities.delete(path);
  }

  #identity(path: string): Identity | null {
    const known = this.#identities.get(path);
    if (known !== undefined) return known;
    let found: Identity | null = null;
    try {
      const stats = lstatSync(path, { bigint: true });
      if (stats.isFile()) found = { identity: identityOf(stats), inode: inodeOf(stats) };
    } catch {
      // gone: null
    }
    if (this.#identities.size >= IDENTITY_CACHE_SIZE) {
      const oldest = this.#identities.keys().next().value;
      if (oldest !== undefined) this.#identities.delete(oldest);
    }
    this.#identities.set(path, found);
    return found;
  }
}

/** Where a chunk's bytes are found: a file of the index and an offset in it. */
export interface SourcePlace {
  fileId: number;
  path: string;
  offset: number;
}

/** Chunks that lie back to back in one source file and go back to back into the target. */
export class CopyRun {
  readonly sourceFileId: number;
  readonly sourcePath: string;
  readonly sourceOffset: number;
  readonly targetOffset: number;
  /** At their offsets in the target. */
  readonly chunks: ChunkRef[] = [];
  bytes = 0;

  constructor(source: SourcePlace, target: ChunkRef) {
    this.sourceFileId = source.fileId;
    this.sourcePath = source.path;
    this.sourceOffset = source.offset;
    this.targetOffset = target.offset;
    this.push(target);
  }

  /** Where the source's next chunk would have to start for the run to go on. */
  get nextSourceOffset(): number {
    return this.sourceOffset + this.bytes;
  }

  /** Whether `target` lands right after this run in the target and the run has room for it. */
  fits(target: ChunkRef): boolean {
    return target.offset === this.targetOffset + this.bytes && this.bytes + target.size <= COPY_RUN_BYTES;
  }

  push(target: ChunkRef): void {
    this.chunks.push(target);
    this.bytes += target.size;
  }
}

export interface CopyResult {
  /** Chunks read, verified and written. */
  copied: ChunkRef[];
  /** Chunks whose bytes in the source did not match their hash (or were missing). */
  mismatched: ChunkRef[];
}

/** Copies a run into `target`, verifying each chunk; `buffer` must hold COPY_RUN_BYTES. */
export async function copyRun(run: CopyRun, target: number, buffer: Buffer): Promise<CopyResult> {
  let filled = 0;
  let source: FileHandle | undefined;
  try {
    source = await open(run.sourcePath, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
    while (filled < run.bytes) {
      const length = Math.min(IO_SLICE_BYTES, run.bytes - filled);
      const { bytesRead } = await source.read(buffer, filled, length, run.sourceOffset + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
  } catch {
    filled = 0; // unreadable now: every chunk goes to the network
  } finally {
    await source?.close().catch(() => {});
  }
  const result: CopyResult = { copied: [], mismatched: [] };
  let spanStart = 0; // bytes of `buffer` verified and not yet written start here
  let at = 0;
  const writeSpan = async (end: number) => {
    if (end > spanStart) await writeFully(target, buffer, spanStart, end, run.targetOffset + spanStart);
  };
  for (const chunk of run.chunks) {
    const fits = at + chunk.size <= filled;
    if (fits && hashBytes(buffer.subarray(at, at + chunk.size)).equals(chunk.hash)) {
      result.copied.push(chunk);
    } else {
      await writeSpan(at);
      spanStart = at + chunk.size;
      result.mismatched.push(chunk);
    }
    at += chunk.size;
  }
  await writeSpan(at);
  return result;
}

const writeAt = promisify(write);

async function writeFully(target: number, buffer: Buffer, start: number, end: number, position: number) {
  let done = start;
  while (done < end) {
    const length = Math.min(IO_SLICE_BYTES, end - done);
    const { bytesWritten } = await writeAt(target, buffer, done, length, position + done - start);
    done += bytesWritten;
  }
}
