/**
 * The benchmark suite's regression check and figures: pure functions, so they are tested here
 * rather than trusted to a benchmark run.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { compareWithBaseline } from "../../bench/lib/baseline.js";
import { figure, quantile } from "../../bench/lib/stats.js";
import type { BenchRecord, SuiteResult } from "../../bench/lib/types.js";

function suite(ratios: Record<string, number>, extra: BenchRecord[] = []): SuiteResult {
  return {
    suite: "teleport-bench",
    version: 1,
    startedAt: "2026-11-27T00:00:00.000Z",
    quick: true,
    runs: 3,
    revision: null,
    machine: {},
    benchmarks: [
      {
        name: "bulk_1gib",
        title: "",
        target: "",
        seconds: 1,
        outcome: {
          status: "ok",
          figures: [],
          ratios: Object.entries(ratios).map(([name, value]) => ({ name, value })),
          checks: [],
        },
      },
      ...extra,
    ],
  };
}

test("a ratio more than 10% worse than the baseline's is a regression; within 10% is not", () => {
  const baseline = suite({ "speed vs scp": 2.0, "speed vs rsync-daemon": 1.0, "speed vs cp": 0.5 });
  const current = suite({ "speed vs scp": 1.79, "speed vs rsync-daemon": 0.91, "speed vs iperf3": 0.9 });

  const comparison = compareWithBaseline(current, baseline, "old.json");

  assert.deepEqual(
    comparison.changes.map((change) => [change.ratio, change.regressed]),
    [
      ["speed vs scp", true],
      ["speed vs rsync-daemon", false],
    ],
  );
  assert.deepEqual(
    comparison.regressions.map((change) => change.ratio),
    ["speed vs scp"],
  );
});

test("benchmarks that did not run in either suite are not compared", () => {
  const notRun: BenchRecord = {
    name: "dedup_identical",
    title: "",
    target: "",
    seconds: 0,
    outcome: { status: "not-implemented", reason: "later" },
  };
  const comparison = compareWithBaseline(suite({ a: 1 }, [notRun]), suite({ a: 0.5 }, [notRun]), "old.json");
  assert.equal(comparison.changes.length, 1);
  assert.equal(comparison.regressions.length, 0);
});

test("a figure is its samples' median and range, flagged noisy past a 25% spread", () => {
  const steady = figure({ tool: "t", role: "subject", metric: "s", better: "lower" }, [2.0, 2.1, 1.9]);
  assert.equal(steady.median, 2.0);
  assert.equal(steady.min, 1.9);
  assert.equal(steady.max, 2.1);
  assert.equal(steady.noisy, false);
  const noisy = figure({ tool: "t", role: "subject", metric: "s", better: "lower" }, [2.0, 3.0, 1.9, 2.1]);
  assert.equal(noisy.median, 2.05);
  assert.equal(noisy.noisy, true);
  assert.equal(quantile([5, 1, 4, 2, 3], 0.99), 5);
  assert.equal(quantile([5, 1, 4, 2, 3], 0.5), 3);
});
