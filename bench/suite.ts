/**
 * The benchmark suite: every target of targets.md, teleport measured side by side with its
 * peers or the physical limit in the same run, reported as JSON, Markdown and charts.
 *
 *   node dist/bench/suite.js [--quick] [--runs N] [--only a,b] [--out DIR] [--baseline FILE] [--list]
 *
 * --quick runs the small version of every quick benchmark (well under 2 minutes; CI runs it).
 * --baseline compares the ratios with a saved results.json and exits 1 on a regression > 10%.
 * Exit status: 0 when every benchmark ran (whether or not it met its target), 1 when one failed
 * to run or regressed. Env: BENCH_DIR (default /tmp/teleport-bench) keeps payloads between runs.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { compressRandom, compressText } from "./cases/compression.js";
import { dedupBenchmarks } from "./cases/dedup.js";
import { giveUp, silentConnectionDrop } from "./cases/give-up.js";
import { latencyBenchmarks } from "./cases/latency.js";
import { load, streamFairness } from "./cases/load.js";
import { memory } from "./cases/memory.js";
import { microBenchmark } from "./cases/micro.js";
import { mountBenchmarks } from "./cases/mount.js";
import { pushBenchmarks } from "./cases/push.js";
import { reach } from "./cases/reach.js";
import { realTreeBenchmarks } from "./cases/real-tree.js";
import { startup } from "./cases/startup.js";
import { transferBenchmarks } from "./cases/transfers.js";
import { wanBenchmarks } from "./cases/wan.js";
import { type BaselineComparison, compareWithBaseline, loadBaseline } from "./lib/baseline.js";
import { ensureDebianPackages } from "./lib/peers.js";
import { writeReport } from "./lib/report.js";
import { findTeleportCli } from "./lib/teleport.js";
import { errorMessage } from "./lib/transfer.js";
import type { BenchContext, Benchmark, BenchOutcome, BenchRecord, SuiteResult } from "./lib/types.js";

/** In the order targets.md lists them. */
const BENCHMARKS: readonly Benchmark[] = [
  ...transferBenchmarks,
  ...pushBenchmarks,
  ...dedupBenchmarks,
  ...latencyBenchmarks,
  load,
  streamFairness,
  memory,
  compressText,
  compressRandom,
  ...wanBenchmarks,
  reach,
  microBenchmark,
  ...realTreeBenchmarks,
  ...mountBenchmarks,
  giveUp,
  silentConnectionDrop,
  startup,
];

interface Options {
  quick: boolean;
  runs: number;
  only: string[] | null;
  outDir: string;
  baselinePath: string | null;
  list: boolean;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      runs: { type: "string" },
      only: { type: "string" },
      out: { type: "string" },
      baseline: { type: "string" },
      list: { type: "boolean", default: false },
    },
  });
  const runs = Number(values.runs ?? "3");
  if (!Number.isInteger(runs) || runs < 1)
    throw new Error(`--runs must be a positive integer, got ${values.runs}`);
  const only = values.only === undefined ? null : values.only.split(",").map((name) => name.trim());
  const unknown = (only ?? []).filter((name) => !BENCHMARKS.some((benchmark) => benchmark.name === name));
  if (unknown.length > 0) {
    throw new Error(
      `--only: unknown ${unknown.join(", ")}; known: ${BENCHMARKS.map((b) => b.name).join(", ")}`,
    );
  }
  const stamp = new Date().toISOString().replaceAll(":", "-").replace(/\..*/, "");
  return {
    quick: values.quick === true,
    runs,
    only,
    outDir: values.out ?? join(benchDir(), "results", stamp),
    baselinePath: values.baseline ?? null,
    list: values.list === true,
  };
}

function benchDir(): string {
  return process.env.BENCH_DIR ?? "/tmp/teleport-bench";
}

function log(message: string): void {
  console.error(`bench: ${message}`);
}

async function main(): Promise<number> {
  const options = parseOptions();
  const selected = BENCHMARKS.filter((benchmark) =>
    options.only === null ? !options.quick || benchmark.quick : options.only.includes(benchmark.name),
  );
  if (options.list) {
    for (const benchmark of BENCHMARKS)
      console.log(`${benchmark.name.padEnd(24)} ${benchmark.quick ? "quick " : "      "}${benchmark.title}`);
    return 0;
  }
  const repoRoot = process.env.TELEPORT_REPO ?? fileURLToPath(new URL("../..", import.meta.url));
  const cli = findTeleportCli(repoRoot);
  if (cli === null) throw new Error(`teleport is not built in ${repoRoot}: run npm run build`);
  const packages = new Set(["time", ...selected.flatMap((benchmark) => benchmark.packages ?? [])]);
  const context: BenchContext = {
    quick: options.quick,
    runs: options.runs,
    repoRoot,
    cli,
    workDir: benchDir(),
    unavailable: ensureDebianPackages([...packages]),
    log,
  };
  for (const [name, reason] of context.unavailable)
    log(`${name} unavailable (${reason}): peers needing it are skipped`);

  const result: SuiteResult = {
    suite: "teleport-bench",
    version: 1,
    startedAt: new Date().toISOString(),
    quick: options.quick,
    runs: options.runs,
    revision: repoRevision(repoRoot),
    machine: machineInfo(),
    benchmarks: [],
  };
  for (const benchmark of selected) {
    log(`${benchmark.name}: ${benchmark.title}`);
    const started = performance.now();
    const outcome = await runBenchmark(benchmark, context);
    const record: BenchRecord = {
      name: benchmark.name,
      title: benchmark.title,
      target: benchmark.target,
      seconds: (performance.now() - started) / 1000,
      outcome,
    };
    result.benchmarks.push(record);
    log(`${benchmark.name}: ${describe(outcome)} (${record.seconds.toFixed(1)} s)`);
  }

  mkdirSync(options.outDir, { recursive: true });
  const jsonPath = join(options.outDir, "results.json");
  writeFileSync(jsonPath, `${JSON.stringify(result, null, 2)}\n`);
  let baseline: BaselineComparison | null = null;
  if (options.baselinePath !== null) {
    baseline = compareWithBaseline(result, loadBaseline(options.baselinePath), options.baselinePath);
  }
  const report = await writeReport(result, options.outDir, baseline);
  log(`results: ${jsonPath}`);
  log(
    `report: ${report.markdownPath}${report.chartPaths.length > 0 ? ` (+ ${report.chartPaths.length} charts)` : ""}`,
  );
  printSummary(result);

  const failed = result.benchmarks.filter((record) => record.outcome.status === "failed");
  for (const record of failed) log(`FAILED: ${record.name}`);
  for (const change of baseline?.regressions ?? []) {
    log(
      `REGRESSION: ${change.benchmark} ${change.ratio}: ${change.before.toFixed(2)} -> ${change.after.toFixed(2)}`,
    );
  }
  return failed.length > 0 || (baseline?.regressions.length ?? 0) > 0 ? 1 : 0;
}

async function runBenchmark(benchmark: Benchmark, context: BenchContext): Promise<BenchOutcome> {
  try {
    return await benchmark.run(context);
  } catch (error) {
    return { status: "failed", reason: errorMessage(error) };
  }
}

function describe(outcome: BenchOutcome): string {
  if (outcome.status !== "ok") return `${outcome.status}: ${outcome.reason}`;
  const met = outcome.checks.filter((check) => check.met).length;
  return `ok, ${met}/${outcome.checks.length} targets met`;
}

function printSummary(result: SuiteResult): void {
  for (const record of result.benchmarks) {
    const { outcome } = record;
    if (outcome.status !== "ok") {
      console.log(`${record.name}: ${outcome.status}: ${outcome.reason}`);
      continue;
    }
    const ratios = outcome.ratios.map((ratio) => `${ratio.name} ${ratio.value.toFixed(2)}x`).join(", ");
    console.log(`${record.name}: ${ratios}`);
    for (const check of outcome.checks) console.log(`  [${check.met ? "x" : " "}] ${check.description}`);
  }
}

function machineInfo(): Record<string, unknown> {
  const cores = cpus();
  return {
    cpuModel: cores[0]?.model ?? "unknown",
    cpuCount: cores.length,
    kernel: release(),
    nodeVersion: process.version,
    totalMemoryBytes: totalmem(),
    // Other work on a shared 2-core machine skews every figure; a high value flags such a run.
    loadAverage1m: loadavg()[0],
  };
}

function repoRevision(repoRoot: string): string | null {
  const git = (args: string[]) =>
    execFileSync("git", ["-C", repoRoot, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  try {
    const head = git(["rev-parse", "--short", "HEAD"]).trim();
    return git(["status", "--porcelain", "--untracked-files=no"]).trim() === "" ? head : `${head}-dirty`;
  } catch {
    return null; // not a git checkout, or no commit yet
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(`bench: ${errorMessage(error)}`);
    process.exitCode = 1;
  },
);
