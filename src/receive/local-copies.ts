/**
 * Copying chunks this machine already has, and verifying each copied chunk. `IndexedChunks` answers "where is a chunk with this hash,
 * in a file that is still as it was indexed?"; `CopyRun` gathers consecutive chunks that sit
 * back to back in one source file and land back to back in the file being written, so a shifted
 * old copy (bytes inserted near the start) is copied in a few large in-kernel copies; `copyRun`
 * copies one and verifies every chunk's hash in the copy: an index row that lies, or a file
 * changed in a way its identity does not show, costs a network fetch, never wrong output.
 */
import { closeSync, constants, lstatSync, openSync, read } from "node:fs";
import { setImmediate } from "node:timers/promises";
import { promisify } from "node:util";
import { hashBytes } from "../chunking/hash.js";
import { BLOCK_BYTES, platformIo } from "../platform/io.js";
import { type ChunkIndex, type ChunkSource, identityOf, inodeOf } from "../store/chunk-index.js";
import { writableOnlyByUs } from "../store/private-file.js";
import type { ChunkRef } from "../wire/messages.js";

/** Largest copy run: copied, read back and verified as one. */
export const COPY_RUN_BYTES = 8 * 1024 * 1024;
/** A run is copied about 1 MiB at a time (see copyRun). */
const COPY_SLICE_BYTES = 1024 * 1024;
/** A copy is read back 256 KiB at a time (see WRITE_SLICE_BYTES in ../pool/chunk-writer.ts). */
const IO_SLICE_BYTES = 256 * 1024;
/** Files whose identity is remembered during a pull (each an lstat). */
const IDENTITY_CACHE_SIZE = 256;

interface Identity {
  identity: string;
  inode: string;
}

/** The chunk index as the planner's LocalChunks (chunk-planner.ts). */
export class IndexedChunks {
  readonly #index: ChunkIndex;
  readonly #identities = new Map<string, Identity | null>();
  /** With `pull --reuse dest`: only files beneath this folder are sources. */
  readonly #within: string | undefined;

  constructor(index: ChunkIndex, within?: string) {
    this.#index = index;
    this.#within = within === undefined ? undefined : `${within.replace(/\/+$/, "")}/`;
  }

  hasChunkAt(fileId: number, offset: number, hash: Buffer): boolean {
    return this.#index.hasChunkAt(fileId, offset, hash);
  }

  /**
   * A place holding the chunk with `hash`, other than the file `excludeFileId`, whose file is
   * unchanged since it was indexed (a download in progress: still the same inode). Sources found
   * stale are dropped from the index.
   */
  find(hash: Buffer, excludeFileId: number | undefined): ChunkSource | undefined {
    for (const source of this.#index.locate(hash)) {
      if (source.fileId === excludeFileId) continue;
      if (this.#within !== undefined && !source.path.startsWith(this.#within)) continue;
      const now = this.#identity(source.path);
      const valid =
        now !== null && (source.inDownload ? now.inode === source.inode : now.identity === source.identity);
      if (valid) return source;
      // A download in progress may be another pull's, still writing: only complete files are dropped.
      if (!source.inDownload) this.#index.forget(source.fileId);
    }
    return undefined;
  }

  /** A source whose bytes did not match its rows: dropped from the index. */
  forget(fileId: number, path: string): void {
    try {
      this.#index.forget(fileId);
    } catch {
      // the index is a cache: a row it keeps is checked before use
    }
    this.changed(path);
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
      if (stats.isFile() && writableOnlyByUs(stats))
        found = { identity: identityOf(stats), inode: inodeOf(stats) };
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

/**
 * Copies a run into `target` in the kernel (copy_file_range, or shared blocks where the file
 * system can clone: see PlatformIo.copyRange), then reads what landed back into `buffer` (which
 * must hold COPY_RUN_BYTES) and verifies each chunk there. Verifying the copy, not the source,
 * is what makes it safe: a source changed between a check and the copy cannot slip in. A chunk
 * that does not match stays unjournaled, and the network's copy overwrites it.
 */
export async function copyRun(run: CopyRun, target: number, buffer: Buffer): Promise<CopyResult> {
  let landed = 0;
  try {
    const source = openSync(run.sourcePath, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
    try {
      // The calls are synchronous: a slice at a time, so that a source not in the page cache
      // holds the event loop for one slice's read, not a whole run's.
      while (landed < run.bytes) {
        const at = landed;
        let length = Math.min(COPY_SLICE_BYTES, run.bytes - at);
        // A slice that is not the last ends on a block of the target: the next starts on one,
        // and the blocks between stay one shared stretch, not one per slice.
        if (at + length < run.bytes) length -= (run.targetOffset + at + length) % BLOCK_BYTES;
        landed += platformIo.copyRange(source, run.sourceOffset + at, target, run.targetOffset + at, length);
        if (landed < at + length) break;
        await setImmediate();
      }
    } finally {
      closeSync(source);
    }
  } catch {
    landed = 0; // unreadable now: every chunk goes to the network
  }
  let filled = 0;
  while (filled < landed) {
    const length = Math.min(IO_SLICE_BYTES, landed - filled);
    const { bytesRead } = await readAt(target, buffer, filled, length, run.targetOffset + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  const result: CopyResult = { copied: [], mismatched: [] };
  let at = 0;
  for (const chunk of run.chunks) {
    const fits = at + chunk.size <= filled;
    if (fits && hashBytes(buffer.subarray(at, at + chunk.size)).equals(chunk.hash)) result.copied.push(chunk);
    else result.mismatched.push(chunk);
    at += chunk.size;
  }
  return result;
}

const readAt = promisify(read);
