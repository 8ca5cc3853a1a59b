/**
 * Runs micro tasks with tinybench, in rounds interleaved across tasks: a burst of load from
 * another process on these shared 2-core machines then lands in one round of several tasks
 * rather than in every sample of one. Each round's rate (from its mean latency) is one sample of
 * the task's figure; the spread between rounds says how far to trust the median.
 */
import { Bench, type Fn, type FnReturnedObject, type Statistics } from "tinybench";
import { quantile } from "../lib/stats.js";
import type { MicroTask } from "./task.js";

export interface HarnessOptions {
  rounds: number;
  /** Time budget per task and round, ms (tasks with `iterationsPerRound` ignore it). */
  roundMs: number;
  /** Warm-up before each round, ms: the tasks run in between evict each other's caches. */
  warmupMs: number;
  log(message: string): void;
}

export interface MicroResult {
  name: string;
  operation: string;
  role: MicroTask["role"];
  metric: "MB/s" | "ops/s";
  bytesPerOp: number | null;
  /** Each round's rate in `metric` units, from the round's mean latency. */
  rates: number[];
  /** Mean latency of one operation over all rounds, ms. */
  meanMs: number;
  /** 99th percentile of the timed samples over all rounds, ms. */
  p99Ms: number;
  /** Timed samples over all rounds (a sample is `opsPerSample` operations). */
  samples: number;
  opsPerSample: number;
  /** Relative margin of error (95%, percent) of `meanMs`; null with a single sample. */
  rmePercent: number | null;
}

/** Minimum timed samples per round, however short the time budget. */
const MIN_SAMPLES = 5;

export async function runMicroTasks(
  tasks: readonly MicroTask[],
  options: HarnessOptions,
): Promise<MicroResult[]> {
  const rounds = tasks.map((): Statistics[] => []);
  for (let round = 0; round < options.rounds; round++) {
    options.log(`micro: round ${round + 1} of ${options.rounds}`);
    for (const [index, task] of tasks.entries()) {
      rounds[index]?.push(await runRound(task, round, options));
    }
  }
  return tasks.map((task, index) => summarize(task, rounds[index] ?? []));
}

async function runRound(task: MicroTask, round: number, options: HarnessOptions): Promise<Statistics> {
  const fixed = task.iterationsPerRound;
  const bench = new Bench({
    retainSamples: true,
    throws: true,
    time: fixed === undefined ? options.roundMs : 0,
    iterations: fixed ?? MIN_SAMPLES,
    // Long fixed-count operations (whole transfers) warm up once, in the first round.
    warmup: fixed === undefined || round === 0,
    warmupTime: fixed === undefined ? options.warmupMs : 0,
    warmupIterations: fixed === undefined ? 2 : 1,
  });
  bench.add(task.name, sampleFunction(task), { async: task.async === true });
  const [timed] = await bench.run();
  const result = timed?.result;
  if (result?.state !== "completed") {
    const reason = result?.state === "errored" ? result.error.message : result?.state;
    throw new Error(`micro task "${task.name}" did not complete: ${reason}`);
  }
  return result.latency;
}

/** Batches `opsPerSample` calls into one timed sample that records the mean of one call. */
function sampleFunction(task: MicroTask): Fn {
  const ops = task.opsPerSample ?? 1;
  if (ops === 1) return () => task.run();
  if (task.async === true) throw new Error(`micro task "${task.name}": opsPerSample needs a synchronous run`);
  return (): FnReturnedObject => {
    const started = performance.now();
    for (let i = 0; i < ops; i++) task.run();
    const elapsed = performance.now() - started;
    return { overriddenDuration: elapsed / ops, overriddenIterationCost: elapsed };
  };
}

function summarize(task: MicroTask, rounds: readonly Statistics[]): MicroResult {
  const latencies = rounds.flatMap((round) => round.samples ?? []);
  if (latencies.length === 0) throw new Error(`micro task "${task.name}" has no samples`);
  const opsPerSecond = (meanMs: number) => 1000 / meanMs;
  return {
    name: task.name,
    operation: task.operation,
    role: task.role,
    metric: task.bytesPerOp === null ? "ops/s" : "MB/s",
    bytesPerOp: task.bytesPerOp,
    rates: rounds.map((round) =>
      task.bytesPerOp === null
        ? opsPerSecond(round.mean)
        : (opsPerSecond(round.mean) * task.bytesPerOp) / 1e6,
    ),
    meanMs: mean(latencies),
    p99Ms: quantile(latencies, 0.99),
    samples: latencies.length,
    opsPerSample: task.opsPerSample ?? 1,
    rmePercent: relativeMarginOfError(latencies),
  };
}

function mean(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** Two-sided 95% Student's t for 1..30 degrees of freedom. */
const T_95 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131,
  2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/**
 * Half-width of the 95% confidence interval of the mean, as a percentage of it, over the samples
 * of all rounds (tinybench's per-round figure would rate a round of two transfers at +-200%).
 */
function relativeMarginOfError(values: readonly number[]): number | null {
  const count = values.length;
  if (count < 2) return null;
  const average = mean(values);
  const variance = values.reduce((sum, value) => sum + (value - average) ** 2, 0) / (count - 1);
  const degrees = count - 1;
  // Beyond 30 degrees of freedom 1.96 + 2.4/df stays within 0.003 of the exact value.
  const critical = T_95[degrees - 1] ?? 1.96 + 2.4 / degrees;
  return (100 * critical * Math.sqrt(variance / count)) / average;
}
