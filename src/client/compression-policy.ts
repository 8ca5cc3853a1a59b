/**
 * What a pull asks the host to compress, batch by batch. `--compress on` asks for a fixed level
 * (`--compress-level`, default 3); `off` for none; `auto` compresses where the link, not the CPU,
 * is the limit: paths under MIN_PROBE_RTT_MS (loopback, LANs) move data faster than one core
 * compresses it (zstd level 1: ~410 MB/s on text here, against ~1 GB/s of TLS on loopback), so
 * there it asks for nothing (nor ever to a loopback address); longer paths get the level.
 */
import { MAX_LEVEL, MIN_LEVEL } from "../compression/zstd.js";
import { MIN_PROBE_RTT_MS } from "./stream-tuner.js";

export type CompressMode = "auto" | "on" | "off";
export const COMPRESS_MODES: readonly CompressMode[] = ["auto", "on", "off"];
export const DEFAULT_COMPRESS_LEVEL = 3;

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
  readonly #level: number;

  constructor(mode: CompressMode = "auto", level = DEFAULT_COMPRESS_LEVEL) {
    if (!Number.isInteger(level) || level < MIN_LEVEL || level > MAX_LEVEL)
      throw new RangeError(`compression level must be ${MIN_LEVEL} to ${MAX_LEVEL}, got ${level}`);
    this.mode = mode;
    this.#level = level;
  }

  /** The zstd level for the next batch; 0 for none. */
  level(path: PathFigures): number {
    switch (this.mode) {
      case "off":
        return 0;
      case "on":
        return this.#level;
      case "auto":
        // Loopback is never worth it, even when a busy machine makes its round trips look long.
        if (path.loopback) return 0;
        return path.minRttMs !== undefined && path.minRttMs >= MIN_PROBE_RTT_MS ? this.#level : 0;
    }
  }
}
