/**
 * Benchmarks of features that do not exist yet. They report "not implemented" with the issue
 * that builds the feature, never a figure: a re-pull today re-sends every byte, which is no
 * measurement of dedup.
 */
import type { Benchmark } from "../lib/types.js";

function notImplemented(name: string, title: string, target: string, reason: string): Benchmark {
  return { name, title, target, quick: true, run: async () => ({ status: "not-implemented", reason }) };
}

const DEDUP = "needs the persistent dedup index and content-defined chunks (issue 4)";
const COMPRESSION = "needs per-chunk compression (issue 7)";

export const pendingBenchmarks: Benchmark[] = [
  notImplemented(
    "dedup_identical",
    "re-pull of an unchanged 1 GiB file",
    "< 0.3 s, every chunk accounted for",
    DEDUP,
  ),
  notImplemented(
    "dedup_insert",
    "1 byte inserted at the start of a 1 GiB file",
    "<= 1% of the file crosses the network",
    DEDUP,
  ),
  notImplemented(
    "dedup_10pct",
    "10% of a 1 GiB file rewritten in place",
    "<= 12% crosses the network",
    DEDUP,
  ),
  notImplemented(
    "resume",
    "pull killed at 50%, then rerun",
    "bytes over the network <= 1.05x the file",
    DEDUP,
  ),
  notImplemented(
    "compress_text",
    "a source-code tree",
    ">= 2.5x fewer bytes on the wire, no slower on loopback",
    COMPRESSION,
  ),
  notImplemented("compress_random", "incompressible data", "<= 2% slower than compression off", COMPRESSION),
];
