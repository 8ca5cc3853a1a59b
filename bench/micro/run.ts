/**
 * Micro-benchmarks of teleport's hot functions, on the command line: prints a table (rate, mean
 * and p99 latency, samples, relative margin of error, spread between rounds), the ratios to the
 * references and the checked targets, and optionally writes the outcome as JSON.
 *
 *   node dist/bench/micro/run.js [--quick] [--json FILE] [--rounds 3] [--scratch-dir DIR]
 */
import { writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { parseArgs } from "node:util";
import type { BenchOutcome, Figure } from "../lib/types.js";
import { runMicroSuite } from "./suite.js";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    json: { type: "string" },
    rounds: { type: "string", default: "3" },
    "scratch-dir": { type: "string", default: tmpdir() },
  },
});
const rounds = Number(args.rounds);
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error(`--rounds must be a positive integer, got "${args.rounds}"`);
  process.exit(2);
}

const startedAt = new Date().toISOString();
const { outcome } = await runMicroSuite({
  quick: args.quick,
  rounds,
  scratchDir: args["scratch-dir"],
  log: (message) => console.error(message),
});
printOutcome(outcome);
if (args.json !== undefined) {
  const record = {
    suite: "teleport-micro",
    version: 1,
    startedAt,
    quick: args.quick,
    rounds,
    machine: { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null },
    outcome,
  };
  writeFileSync(args.json, `${JSON.stringify(record, null, 2)}\n`);
  console.error(`micro: wrote ${args.json}`);
}

function printOutcome(result: BenchOutcome): void {
  if (result.status !== "ok") {
    console.log(`micro: ${result.status}: ${result.reason}`);
    return;
  }
  const header = ["task", "role", "rate", "mean", "p99", "samples", "rme", "spread"];
  const rows = result.figures.map(tableRow);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => {
        // Names left-aligned, numbers right-aligned.
        const width = widths[column] ?? 0;
        return column < 2 ? cell.padEnd(width) : cell.padStart(width);
      })
      .join("  ");
  console.log(line(header));
  for (const row of rows) console.log(line(row));
  for (const note of result.notes ?? []) console.log(`-  ${note}`);
  console.log("");
  for (const ratio of result.ratios) console.log(`${ratio.name}: ${ratio.value.toFixed(2)}x`);
  console.log("");
  for (const check of result.checks) console.log(`${check.met ? "PASS" : "FAIL"}  ${check.description}`);
}

function tableRow(entry: Figure): string[] {
  const details = entry.details ?? {};
  const number = (key: string) => (typeof details[key] === "number" ? (details[key] as number) : Number.NaN);
  const rate = Math.round(entry.median).toLocaleString("en-US");
  const spread = entry.median > 0 ? (entry.max - entry.min) / entry.median : 0;
  return [
    entry.tool,
    entry.role,
    `${rate} ${entry.metric}${entry.noisy ? " (noisy)" : ""}`,
    duration(number("meanMs")),
    duration(number("p99Ms")),
    String(number("samples")),
    Number.isFinite(number("rmePercent")) ? `±${number("rmePercent").toFixed(1)}%` : "-",
    `${(spread * 100).toFixed(0)}%`,
  ];
}

function duration(ms: number): string {
  if (!Number.isFinite(ms)) return "-";
  if (ms < 1) return `${(ms * 1000).toFixed(1)} µs`;
  if (ms < 1000) return `${ms.toFixed(2)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}
