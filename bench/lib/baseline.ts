/**
 * Regression check against a saved run. Machines drift, so absolute times are not compared:
 * only ratios to a peer or limit measured in the same run are, and a ratio more than 10% worse
 * than the baseline's is flagged.
 */
import { readFileSync } from "node:fs";
import type { SuiteResult } from "./types.js";

export const REGRESSION_THRESHOLD = 0.1;

export interface RatioChange {
  benchmark: string;
  ratio: string;
  before: number;
  after: number;
  /** after / before - 1; ratios are oriented so that higher is better. */
  change: number;
  regressed: boolean;
}

export interface BaselineComparison {
  baselinePath: string;
  baselineStartedAt: string;
  changes: RatioChange[];
  regressions: RatioChange[];
}

export function loadBaseline(path: string): SuiteResult {
  const parsed = JSON.parse(readFileSync(path, "utf8")) as Partial<SuiteResult>;
  if (parsed.suite !== "teleport-bench" || !Array.isArray(parsed.benchmarks)) {
    throw new Error(`${path} is not a teleport benchmark result (results.json of a suite run)`);
  }
  return parsed as SuiteResult;
}

export function compareWithBaseline(
  current: SuiteResult,
  baseline: SuiteResult,
  path: string,
): BaselineComparison {
  const changes: RatioChange[] = [];
  for (const record of current.benchmarks) {
    const before = baseline.benchmarks.find((candidate) => candidate.name === record.name);
    if (record.outcome.status !== "ok" || before?.outcome.status !== "ok") continue;
    for (const ratio of record.outcome.ratios) {
      const old = before.outcome.ratios.find((candidate) => candidate.name === ratio.name);
      if (old === undefined || !(old.value > 0) || !Number.isFinite(ratio.value)) continue;
      const change = ratio.value / old.value - 1;
      changes.push({
        benchmark: record.name,
        ratio: ratio.name,
        before: old.value,
        after: ratio.value,
        change,
        regressed: change < -REGRESSION_THRESHOLD,
      });
    }
  }
  return {
    baselinePath: path,
    baselineStartedAt: baseline.startedAt,
    changes,
    regressions: changes.filter((change) => change.regressed),
  };
}
