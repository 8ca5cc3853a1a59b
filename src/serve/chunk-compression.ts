/**
 * Compression of one connection's chunk frames, for clients that ask (Feature.COMPRESSION).
 * Decided per file, then per chunk: files of compressed formats, and files whose chunks did not
 * compress just before, skip the compression thread altogether; the thread skips dense-looking
 * chunks and keeps only what saved 5%. A level left to the host adapts to how busy it is.
 */
import { AdaptiveLevel } from "../compression/adaptive-level.js";
import { hasCompressedExtension, hasCompressedMagic } from "../compression/compressible.js";
import type { CompressionThreads } from "../compression/compression-threads.js";
import { MAX_LEVEL } from "../compression/zstd.js";
import { COMPRESS_ADAPTIVE, COMPRESS_ADAPTIVE_ALWAYS } from "../wire/messages.js";
import { CHUNK_FRAME_PREFIX, type ChunkGroup, type ChunkRun, lastOf } from "./chunk-groups.js";

/** Files a connection remembers as not worth compressing. */
const DENSE_FILES_REMEMBERED = 1024;
/**
 * After a group of a file's chunks that did not compress, this many bytes of the file skip the
 * compressor; then it is tried again. A file can be mixed (an executable's code, then its
 * packed resources): one dense group does not say the rest is.
 */
const DENSE_SKIP_BYTES = 16 * 1024 * 1024;

export class ChunkCompression {
  readonly #threads: CompressionThreads;
  /** Files whose chunks did not compress, and the offset up to which their chunks skip the thread. */
  readonly #denseFiles = new Map<string, number>();
  /**
   * The level for requests that leave it to the host (COMPRESS_ADAPTIVE, or _ALWAYS), made on
   * the first; `requested` is which of the two it follows.
   */
  #adaptive: { requested: number; level: AdaptiveLevel } | undefined;

  constructor(threads: CompressionThreads) {
    this.#threads = threads;
  }

  /**
   * The group's frames with the chunks worth it compressed (in place, on a compression thread).
   * `requested` is the client's level, or one of the adaptive ones.
   */
  async compress(group: ChunkGroup, frames: Buffer, requested: number): Promise<Buffer> {
    const store = storeFlags(group, frames, (path, offset) => offset < (this.#denseFiles.get(path) ?? 0));
    if (store.every((flag) => flag === 1)) return frames;
    const adaptive = this.#adaptiveLevel(requested);
    const level = adaptive?.level() ?? Math.min(requested, MAX_LEVEL);
    if (level === 0) return frames;
    await this.#threads.ready();
    const started = performance.now();
    const result = await this.#threads.compress(frames, level, store);
    adaptive?.compressed(performance.now() - started);
    const { path } = group[0][0];
    if (result.compressedChunks === 0 && group.every((run) => run[0].path === path)) {
      if (this.#denseFiles.size >= DENSE_FILES_REMEMBERED) this.#denseFiles.clear();
      const last = lastOf(lastOf(group));
      this.#denseFiles.set(path, last.offset + last.size + DENSE_SKIP_BYTES);
    }
    return frames.subarray(0, result.length);
  }

  /** The connection's adaptive level when `requested` asks for one, made on first use. */
  #adaptiveLevel(requested: number): AdaptiveLevel | undefined {
    if (requested !== COMPRESS_ADAPTIVE && requested !== COMPRESS_ADAPTIVE_ALWAYS) return undefined;
    if (this.#adaptive?.requested !== requested) {
      const level = new AdaptiveLevel({ always: requested === COMPRESS_ADAPTIVE_ALWAYS });
      this.#adaptive = { requested, level };
    }
    return this.#adaptive.level;
  }
}

/**
 * Which frames of a group to send as they are: chunks of files whose name or first bytes say
 * they are compressed already, or whose chunks just before did not compress (`knownDense`). The
 * compressor also skips dense-looking chunks of any file.
 */
function storeFlags(
  group: readonly ChunkRun[],
  frames: Buffer,
  knownDense: (path: string, offset: number) => boolean,
): Uint8Array {
  const flags = new Uint8Array(group.reduce((sum, run) => sum + run.length, 0));
  let index = 0;
  let at = 0;
  for (const run of group) {
    const first = run[0];
    const start = frames.subarray(
      at + CHUNK_FRAME_PREFIX,
      at + CHUNK_FRAME_PREFIX + Math.min(first.size, 16),
    );
    const store =
      hasCompressedExtension(first.path) ||
      knownDense(first.path, first.offset) ||
      (first.offset === 0 && hasCompressedMagic(start));
    for (const request of run) {
      if (store) flags[index] = 1;
      index++;
      at += CHUNK_FRAME_PREFIX + request.size;
    }
  }
  return flags;
}
