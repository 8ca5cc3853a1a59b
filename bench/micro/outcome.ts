/**
 * Micro results as the suite reports them: one figure per task, ratios of teleport's hot paths
 * to the references measured in the same run, and the targets checked.
 */
import { figure } from "../lib/stats.js";
import type { BenchOutcome, Check, Figure, Ratio } from "../lib/types.js";
import { CHUNK_FILE_64MIB } from "./chunking.js";
import { DENSE_GROUP, ZSTD_DECOMPRESS, zstdTaskName } from "./compression.js";
import type { MicroResult } from "./harness.js";
import { BLAKE3_1MIB, BLAKE3_STREAMING, SHA256_1MIB } from "./hashing.js";
import { MEMCPY_4MIB } from "./memory.js";
import type { NotImplemented } from "./tasks.js";
import { tlsTaskName } from "./tls.js";
import { FRAME_DECODE } from "./wire.js";

/** targets.md measured ~4.7 GB/s for the native binding on one core; pure JS would be ~0.04. */
export const BLAKE3_MIN_MBPS = 2000;
/** Above what one TLS connection carries (~0.9 GB/s here), so decoding is never the bottleneck. */
export const FRAME_DECODE_MIN_MBPS = 1000;

/**
 * A group of random chunks costs the host an entropy sample per chunk, not a zstd run: above
 * what one TLS connection carries, compressing what does not compress never slows a transfer.
 */
export const DENSE_GROUP_MIN_MBPS = 1000;

const AES_128 = tlsTaskName("TLS_AES_128_GCM_SHA256");

/** [ratio name, numerator task, denominator task]: higher is better for teleport. */
const RATIOS: readonly [string, string, string][] = [
  ["blake3 1 MiB vs memcpy", BLAKE3_1MIB, MEMCPY_4MIB],
  ["blake3 1 MiB vs sha256", BLAKE3_1MIB, SHA256_1MIB],
  ["blake3 streaming vs one-shot 1 MiB", BLAKE3_STREAMING, BLAKE3_1MIB],
  ["chunkFile vs blake3 1 MiB", CHUNK_FILE_64MIB, BLAKE3_1MIB],
  ["frame decode vs memcpy", FRAME_DECODE, MEMCPY_4MIB],
  // Below 1, compressing is slower than the wire on loopback: why auto compresses nothing there.
  ["zstd level 1 vs tls aes-128-gcm", zstdTaskName(1), AES_128],
  ["zstd level 3 vs level 1", zstdTaskName(3), zstdTaskName(1)],
  ["zstd decompress vs tls aes-128-gcm", ZSTD_DECOMPRESS, AES_128],
  ["compressFrames random vs memcpy", DENSE_GROUP, MEMCPY_4MIB],
  ["frame decode vs tls aes-128-gcm", FRAME_DECODE, AES_128],
  ["tls aes-128-gcm vs aes-256-gcm", AES_128, tlsTaskName("TLS_AES_256_GCM_SHA384")],
  ["tls aes-128-gcm vs chacha20-poly1305", AES_128, tlsTaskName("TLS_CHACHA20_POLY1305_SHA256")],
];

export function microOutcome(
  results: readonly MicroResult[],
  notImplemented: readonly NotImplemented[],
): BenchOutcome {
  const figures = results.map(toFigure);
  const medianOf = (tool: string) => figures.find((entry) => entry.tool === tool)?.median;
  const ratios: Ratio[] = RATIOS.flatMap(([name, subject, reference]) => {
    const [top, bottom] = [medianOf(subject), medianOf(reference)];
    return top === undefined || bottom === undefined || bottom === 0 ? [] : [{ name, value: top / bottom }];
  });
  const atLeast = (tool: string, minimum: number, description: string): Check => {
    const value = medianOf(tool);
    return {
      description: `${description}: ${value?.toFixed(0) ?? "not measured"}`,
      met: (value ?? 0) >= minimum,
    };
  };
  return {
    status: "ok",
    figures,
    ratios,
    checks: [
      atLeast(BLAKE3_1MIB, BLAKE3_MIN_MBPS, `BLAKE3 on 1 MiB >= ${BLAKE3_MIN_MBPS} MB/s on one core`),
      atLeast(FRAME_DECODE, FRAME_DECODE_MIN_MBPS, `FrameDecoder >= ${FRAME_DECODE_MIN_MBPS} MB/s`),
      atLeast(
        DENSE_GROUP,
        DENSE_GROUP_MIN_MBPS,
        `random chunks pass the compressor at >= ${DENSE_GROUP_MIN_MBPS} MB/s`,
      ),
    ],
    notes: notImplemented.map(({ name, reason }) => `${name}: not implemented (${reason}); no figure`),
    details: { notImplemented },
  };
}

function toFigure(result: MicroResult): Figure {
  const built = figure(
    {
      tool: result.name,
      role: result.role,
      metric: result.metric,
      better: "higher",
      details: {
        operation: result.operation,
        bytesPerOp: result.bytesPerOp,
        meanMs: result.meanMs,
        p99Ms: result.p99Ms,
        samples: result.samples,
        opsPerSample: result.opsPerSample,
        rmePercent: result.rmePercent,
      },
    },
    result.rates,
  );
  return result.metric === "MB/s" ? { ...built, megabytesPerSecond: built.median } : built;
}
