/**
 * zstd, behind one small module so the binding can change: zstd-napi 0.0.13 (zstd 1.5.7, built
 * from source at install). It compresses into and out of caller-given buffers, so chunks go
 * from pooled buffer to pooled buffer without allocating (its speeds per level:
 * docs/decisions.md, "zstd levels").
 */
import zstd from "zstd-napi/binding.js";
import { ErrorCode, TeleportError } from "../errors.js";

export { MAX_LEVEL, MIN_LEVEL } from "./levels.js";

/** The most a chunk of `size` bytes can take once compressed. */
export function compressBound(size: number): number {
  return zstd.compressBound(size);
}

/** One compression context, reused for every chunk a thread compresses. */
export class Compressor {
  readonly #context = new zstd.CCtx();

  /** Compresses `source` into `target` (at least `compressBound` bytes); returns the length written. */
  compress(target: Uint8Array, source: Uint8Array, level: number): number {
    return this.#context.compress(target, source, level);
  }
}

/** One decompression context, reused for every chunk a stream receives. */
export class Decompressor {
  readonly #context = new zstd.DCtx();

  /**
   * Decompresses one frame into `target`, which must come out exactly full: a frame that is
   * corrupt, or holds more or fewer bytes than the chunk it stands for, is a PROTOCOL error
   * (and never writes past `target`).
   */
  decompressExactly(target: Uint8Array, frame: Uint8Array): void {
    let length: number;
    try {
      length = this.#context.decompress(target, frame);
    } catch (err) {
      throw new TeleportError(ErrorCode.PROTOCOL, `corrupt compressed chunk: ${(err as Error).message}`);
    }
    if (length !== target.length) {
      throw new TeleportError(
        ErrorCode.PROTOCOL,
        `compressed chunk holds ${length} bytes, ${target.length} expected`,
      );
    }
  }
}
