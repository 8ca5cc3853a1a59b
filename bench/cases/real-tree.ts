/**
 * Benchmarks on a real public tree nobody here wrote (real-tree/trees.ts): a cold pull, the next
 * release pulled into the old one's copy, and compression over a WAN, each beside rsync.
 */
import type { Benchmark } from "../lib/types.js";
import { realTreeCold } from "./real-tree/cold.js";
import { compressRealTreeWan } from "./real-tree/compress-wan.js";
import { realTreeNext } from "./real-tree/next-release.js";

export const realTreeBenchmarks: Benchmark[] = [realTreeCold, realTreeNext, compressRealTreeWan];
