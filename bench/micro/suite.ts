/**
 * The whole micro suite in one call, shared by the command line (run.ts) and the benchmark
 * suite (bench/cases/micro.ts): prepare the tasks, run them, build the outcome, clean up.
 */
import type { BenchOutcome } from "../lib/types.js";
import { type MicroResult, runMicroTasks } from "./harness.js";
import { microOutcome } from "./outcome.js";
import { prepareMicroTasks } from "./tasks.js";

export interface MicroSuiteOptions {
  quick: boolean;
  rounds: number;
  scratchDir: string;
  log(message: string): void;
}

/** Time per task over all rounds: quick mode must leave the whole suite well under 20 s. */
const TASK_BUDGET_MS = { quick: 300, full: 1500 };
const WARMUP_MS = { quick: 30, full: 100 };

export async function runMicroSuite(
  options: MicroSuiteOptions,
): Promise<{ results: MicroResult[]; outcome: BenchOutcome }> {
  const rounds = Math.max(1, Math.floor(options.rounds));
  const mode = options.quick ? "quick" : "full";
  const prepared = await prepareMicroTasks({ quick: options.quick, scratchDir: options.scratchDir });
  try {
    const results = await runMicroTasks(prepared.tasks, {
      rounds,
      roundMs: TASK_BUDGET_MS[mode] / rounds,
      warmupMs: WARMUP_MS[mode],
      log: options.log,
    });
    return { results, outcome: microOutcome(results, prepared.notImplemented) };
  } finally {
    await prepared.close();
  }
}
