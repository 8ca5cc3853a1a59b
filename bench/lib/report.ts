/**
 * What a suite run leaves behind for people: a Markdown report (a summary table, then every
 * benchmark's figures, ratios and checks) and the SVG charts of charts.ts.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BaselineComparison } from "./baseline.js";
import { type Chart, renderSvg, reportCharts } from "./charts.js";
import type { BenchRecord, Figure, SuiteResult } from "./types.js";

export interface WrittenReport {
  markdownPath: string;
  chartPaths: string[];
}

export async function writeReport(
  result: SuiteResult,
  outDir: string,
  baseline: BaselineComparison | null,
): Promise<WrittenReport> {
  const charts = reportCharts(result, baseline);
  for (const chart of charts) writeFileSync(join(outDir, chart.file), await renderSvg(chart.spec));
  const markdownPath = join(outDir, "report.md");
  writeFileSync(markdownPath, markdown(result, baseline, charts));
  return { markdownPath, chartPaths: charts.map((chart) => join(outDir, chart.file)) };
}

function markdown(
  result: SuiteResult,
  baseline: BaselineComparison | null,
  charts: readonly Chart[],
): string {
  const machine = result.machine;
  const lines = [
    "# teleport benchmark report",
    "",
    `${result.quick ? "Quick" : "Full"} run of ${result.startedAt}, revision ${result.revision ?? "unknown"}, ` +
      `${result.runs} timed runs per tool after a warm-up (medians; min-max shown).`,
    `Machine: ${machine.cpuModel}, ${machine.cpuCount} cores, kernel ${machine.kernel}, Node ${machine.nodeVersion}, ` +
      `load average ${Number(machine.loadAverage1m).toFixed(2)} at the start.`,
    "",
    "## Summary",
    "",
    table(
      ["benchmark", "teleport", "compared with", "target", "met"],
      result.benchmarks.map((record) => summaryRow(record)),
    ),
    "",
  ];
  const [baselineCharts, runCharts] = [
    charts.filter(isBaseline),
    charts.filter((chart) => !isBaseline(chart)),
  ];
  if (baseline !== null) lines.push(...baselineSection(baseline, baselineCharts), "");
  for (const chart of runCharts) lines.push(`![${chart.title}](${chart.file})`, "");
  for (const record of result.benchmarks) lines.push(...benchmarkSection(record), "");
  lines.push(
    "Ratios are oriented so that above 1 favours teleport: for times, the other tool's median over",
    "teleport's. A figure is flagged noisy when (max - min) / median exceeds 25%. MB = 10^6 bytes.",
    "",
  );
  return lines.join("\n");
}

function summaryRow(record: BenchRecord): string[] {
  const { outcome } = record;
  if (outcome.status !== "ok")
    return [record.name, `${outcome.status}: ${outcome.reason}`, "", record.target, "-"];
  const subject = outcome.figures.find((entry) => entry.role === "subject");
  const ratios = outcome.ratios.map((ratio) => `${ratio.name}: ${ratio.value.toFixed(2)}x`).join("; ");
  const met = outcome.checks.length === 0 ? "-" : outcome.checks.every((check) => check.met) ? "yes" : "no";
  return [record.name, subject === undefined ? "-" : formatFigure(subject), ratios, record.target, met];
}

function benchmarkSection(record: BenchRecord): string[] {
  const lines = [`## ${record.name}`, "", `${record.title}. Target: ${record.target}.`, ""];
  const { outcome } = record;
  if (outcome.status !== "ok") return [...lines, `**${outcome.status}**: ${outcome.reason}`];
  lines.push(
    table(
      [
        "tool",
        "role",
        "median",
        "min-max",
        "MB/s",
        "client CPU s",
        "client RSS MB",
        "server CPU s",
        "server RSS MB",
      ],
      outcome.figures.map((entry) => [
        entry.noisy ? `${entry.tool} (noisy)` : entry.tool,
        entry.role,
        `${round(entry.median)} ${entry.metric}`,
        `${round(entry.min)}-${round(entry.max)}`,
        entry.megabytesPerSecond === undefined ? "-" : entry.megabytesPerSecond.toFixed(0),
        optional(entry.clientCpuSeconds, 1, 2),
        optional(entry.clientPeakRssBytes, 1e6, 0),
        optional(entry.serverCpuSeconds, 1, 2),
        optional(entry.serverPeakRssBytes, 1e6, 0),
      ]),
    ),
    "",
  );
  for (const ratio of outcome.ratios) lines.push(`- ${ratio.name}: **${ratio.value.toFixed(2)}x**`);
  for (const check of outcome.checks) lines.push(`- [${check.met ? "x" : " "}] ${check.description}`);
  for (const note of outcome.notes ?? []) lines.push(`- note: ${note}`);
  return lines;
}

function isBaseline(chart: Chart): boolean {
  return chart.file === "baseline.svg";
}

function baselineSection(baseline: BaselineComparison, charts: readonly Chart[]): string[] {
  const lines = [`## Against baseline ${baseline.baselinePath} (${baseline.baselineStartedAt})`, ""];
  if (baseline.changes.length === 0) return [...lines, "No ratio in common with the baseline."];
  for (const chart of charts) lines.push(`![${chart.title}](${chart.file})`, "");
  lines.push(
    table(
      ["benchmark", "ratio", "baseline", "now", "change", "flag"],
      baseline.changes.map((change) => [
        change.benchmark,
        change.ratio,
        change.before.toFixed(2),
        change.after.toFixed(2),
        `${(change.change * 100).toFixed(1)}%`,
        change.regressed ? "REGRESSED" : "",
      ]),
    ),
  );
  return lines;
}

function formatFigure(entry: Figure): string {
  const rate =
    entry.megabytesPerSecond === undefined || entry.metric === "MB/s"
      ? ""
      : ` (${entry.megabytesPerSecond.toFixed(0)} MB/s)`;
  return `${round(entry.median)} ${entry.metric}${rate}${entry.noisy ? ", noisy" : ""}`;
}

function round(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  return Math.abs(value) >= 100
    ? value.toFixed(0)
    : Math.abs(value) >= 1
      ? value.toFixed(2)
      : value.toFixed(3);
}

function optional(value: number | null | undefined, divisor: number, digits: number): string {
  return typeof value === "number" ? (value / divisor).toFixed(digits) : "-";
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const escapeCell = (cell: string) => cell.replaceAll("|", "\\|").replaceAll("\n", " ");
  return [
    `| ${header.map(escapeCell).join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...rows.map((row) => `| ${row.map(escapeCell).join(" | ")} |`),
  ].join("\n");
}
