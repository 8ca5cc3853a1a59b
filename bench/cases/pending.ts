/**
 * Benchmarks of features that do not exist yet. They report "not implemented" with the issue
 * that builds the feature, never a figure: a re-pull today re-sends every byte, which is no
 * measurement of dedup.
 */
import type { Benchmark } from "../lib/types.js";

function notImplemented(name: string, title: string, target: string, reason: string): Benchmark {
  return { name, title, target, quick: true, run: async () => ({ status: "not-implemented", reason }) };
}

const COMPRESSION = "needs per-chunk compression (issue 7)";

export const pendingBenchmarks: Benchmark[] = [
  notImplemented(
    "compress_text",
    "a source-code tree",
    ">= 2.5x fewer bytes on the wire, no slower on loopback",
    COMPRESSION,
  ),
  notImplemented("compress_random", "incompressible data", "<= 2% slower than compression off", COMPRESSION),
];
