/**
 * What a pull asks the host to compress, batch by batch. `--compress on` asks for compression
 * always; `off` for none; `auto` where the link, not the CPU, is the limit: paths under
 * MIN_PROBE_RTT_MS (loopback, LANs) move data faster than one core compresses it (zstd level 1:
 * ~400 MB/s on text here, against ~1 GB/s of TLS on loopback), so there it asks for nothing (nor
 * ever to a loopback address); longer paths get compression. The level is the host's to adapt
 * (see AdaptiveLevel), unless `--compress-level` pins it.
 */
import { MAX_LEVEL, MIN_LEVEL } from "../../compression/levels.js";
import { COMPRESS_ADAPTIVE, COMPRESS_ADAPTIVE_ALWAYS } from "../../wire/messages.js";
import { MIN_PROBE_RTT_MS } from "./stream-tuner.js";

export type CompressMode = "auto" | "on" | "off";
export const COMPRESS_MODES: readonly CompressMode[] = ["auto", "on", "off"];

/** What the pool knows of the path when it hands out a batch. */
export interface PathFigures {
  minRttMs: number | undefined;
  /** The host is this machine (a loopback address): never worth compressing for. */
  loopback: boolean;
}

/** Whether `host` (a link's host) names this machine through the loopback interface. */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export class CompressionPolicy {
  readonly mode: CompressMode;
  /** The level asked for: a pinned zstd level, or one of the host's adaptive ones. */
  readonly #requested: number;

  /**
   * `level` pins the zstd level; without it the host adapts it, down to none at all under `auto`
   * (where the compressor is slower than the link), never below level 1 under `on`.
   */
  constructor(mode: CompressMode = "auto", level?: number) {
    if (level !== undefined && (!Number.isInteger(level) || level < MIN_LEVEL || level > MAX_LEVEL))
      throw new RangeError(`compression level must be ${MIN_LEVEL} to ${MAX_LEVEL}, got ${level}`);
    this.mode = mode;
    this.#requested = level ?? (mode === "on" ? COMPRESS_ADAPTIVE_ALWAYS : COMPRESS_ADAPTIVE);
  }

  /** What to ask for with the next batch (GetChunksRequest.compressLevel); 0 for none. */
  level(path: PathFigures): number {
    switch (this.mode) {
      case "off":
        return 0;
      case "on":
        return this.#requested;
      case "auto":
        // Loopback is never worth it, even when a busy machine makes its round trips look long.
        if (path.loopback) return 0;
        return path.minRttMs !== undefined && path.minRttMs >= MIN_PROBE_RTT_MS ? this.#requested : 0;
    }
  }
}
