/**
 * The shape every benchmark of the suite shares: what it is given, and what it reports. A
 * benchmark measures teleport and, in the same run, the peers or the physical limit it is judged
 * against; the suite turns outcomes into JSON, a Markdown report, charts and baseline checks.
 */

export interface BenchContext {
  /** Quick mode: small payloads, fewer runs; proves the suite works in well under 2 minutes. */
  quick: boolean;
  /** Timed runs per tool, after one warm-up run. */
  runs: number;
  repoRoot: string;
  /** Compiled teleport CLI (dist/src/cli/bin.js). */
  cli: string;
  /** Where payloads live (reused across invocations) and scratch space goes. */
  workDir: string;
  /** Debian packages that could not be installed, with why; peers needing them are skipped. */
  unavailable: ReadonlyMap<string, string>;
  log(message: string): void;
}

export interface Benchmark {
  /** As named in targets.md and issue 3: bulk_1gib, many_small, parallel_streams, ... */
  name: string;
  /** One line: what is measured. */
  title: string;
  /** The target from targets.md, in words. */
  target: string;
  /** Whether quick mode runs it (with its quick-sized payload). */
  quick: boolean;
  /** Debian packages it wants installed (peers, iperf3, ...) before it runs. */
  packages?: readonly string[];
  run(context: BenchContext): Promise<BenchOutcome>;
}

export type BenchOutcome =
  | {
      status: "ok";
      /** One row per tool (or per configuration) measured. */
      figures: Figure[];
      /** Ratios against peers or limits; these are what baselines compare. */
      ratios: Ratio[];
      /** The target, checked. */
      checks: Check[];
      /** Series for line charts, e.g. throughput per stream count. */
      series?: Series[];
      notes?: string[];
      details?: Record<string, unknown>;
    }
  /** The feature it measures does not exist yet: no figure, never a fake one. */
  | { status: "not-implemented"; reason: string }
  /** A prerequisite is missing here (no root for netsim, a package that would not install). */
  | { status: "skipped"; reason: string }
  | { status: "failed"; reason: string };

export interface Figure {
  tool: string;
  role: "subject" | "peer" | "limit";
  /** What `median` measures, e.g. "seconds", "p50 ms", "files/s". */
  metric: string;
  better: "lower" | "higher";
  samples: number[];
  median: number;
  min: number;
  max: number;
  /** Spread of the samples is large enough that the median is doubtful. */
  noisy: boolean;
  /** Payload MB (10^6 bytes) per second at the median, for transfers. */
  megabytesPerSecond?: number;
  clientCpuSeconds?: number | null;
  clientPeakRssBytes?: number | null;
  serverCpuSeconds?: number | null;
  serverPeakRssBytes?: number | null;
  details?: Record<string, unknown>;
}

/** A same-run comparison: teleport's figure relative to another, oriented so that higher is better. */
export interface Ratio {
  /** Stable key for baselines, e.g. "speed vs rsync-daemon". */
  name: string;
  value: number;
}

export interface Check {
  description: string;
  met: boolean;
}

export interface Series {
  /** Chart title, e.g. "throughput vs streams, 1 Gbit/s 50 ms 0.1% loss (reno)". */
  title: string;
  xLabel: string;
  yLabel: string;
  points: { x: number | string; y: number; group: string }[];
}

export interface BenchRecord {
  name: string;
  title: string;
  target: string;
  seconds: number;
  outcome: BenchOutcome;
}

export interface SuiteResult {
  suite: "teleport-bench";
  version: 1;
  startedAt: string;
  quick: boolean;
  runs: number;
  revision: string | null;
  machine: Record<string, unknown>;
  benchmarks: BenchRecord[];
}
