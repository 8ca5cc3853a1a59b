/**
 * The benchmark report's charts, drawn from a real suite run (test/fixtures/bench-results.json:
 * a quick run and a WAN run, figures' raw details left out) and rendered to PNG with resvg:
 * each fits within 1200 px, names every tool whole, and draws every transfer bar large enough
 * to see; the baseline's ratios stand beside this run's.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Resvg } from "@resvg/resvg-js";
import { compareWithBaseline } from "../../bench/lib/baseline.js";
import { bestPeerRatio } from "../../bench/lib/charts.js";
import { writeReport } from "../../bench/lib/report.js";
import type { BenchRecord, SuiteResult } from "../../bench/lib/types.js";

const FIXTURE = new URL("../../../test/fixtures/bench-results.json", import.meta.url);
const MAX_WIDTH = 1200;
/** A bar thinner or shorter than this reads as a line, as every transfer bar did on one shared axis. */
const MIN_BAR_PX = { length: 3, thickness: 10 };

async function loadRun(): Promise<SuiteResult> {
  return JSON.parse(await readFile(FIXTURE, "utf8")) as SuiteResult;
}

/**
 * A made-up series, as parallel_streams reports one (that benchmark needs an emulated WAN and
 * minutes, so no saved run has it): throughput per stream count, plain TCP for reference.
 */
const STREAMS_SERIES: BenchRecord = {
  name: "parallel_streams",
  title: "teleport throughput per --streams count (and auto)",
  target: "auto within 10% of the best fixed stream count",
  seconds: 1,
  outcome: {
    status: "ok",
    figures: [],
    ratios: [],
    checks: [],
    series: [
      {
        title: "throughput vs streams, 1 Gbit/s 50 ms 0.1% loss (reno)",
        xLabel: "streams",
        yLabel: "Mbit/s",
        points: [
          ...[1, 2, 4, 8, 16, 32, 64, 128].map((x) => ({ x, y: Math.min(900, 14 * x), group: "teleport" })),
          { x: "auto", y: 880, group: "teleport" },
          { x: 1, y: 13, group: "rsync-daemon" },
        ],
      },
    ],
  },
};

/** The run with every ratio 20% better and one 30% worse, as a baseline saved earlier. */
function earlierRun(run: SuiteResult): SuiteResult {
  const earlier = structuredClone(run);
  earlier.startedAt = "2026-11-01T00:00:00.000Z";
  for (const record of earlier.benchmarks) {
    if (record.outcome.status !== "ok") continue;
    for (const ratio of record.outcome.ratios) ratio.value *= record.name === "bulk_1gib" ? 1.3 : 0.8;
  }
  return earlier;
}

function svgSize(svg: string): { width: number; height: number } {
  const match = /^<svg[^>]* width="([\d.]+)" height="([\d.]+)"/.exec(svg);
  assert.ok(match !== null, "an <svg> with its size");
  return { width: Number(match[1]), height: Number(match[2]) };
}

/** Every bar of the chart's rect marks, as vega draws them: `d="M x,y h W v H h -W Z"`. */
function bars(svg: string): { label: string; length: number; thickness: number }[] {
  const found: { label: string; length: number; thickness: number }[] = [];
  for (const group of svg.matchAll(/<g class="mark-rect role-mark[^"]*"[^>]*>(.*?)<\/g>/g)) {
    for (const bar of (group[1] ?? "").matchAll(
      /aria-label="([^"]*)"[^>]* d="M[-\d.e]+,[-\d.e]+h([-\d.e]+)v([-\d.e]+)h/g,
    ))
      found.push({
        label: bar[1] ?? "",
        length: Math.abs(Number(bar[2])),
        thickness: Math.abs(Number(bar[3])),
      });
  }
  return found;
}

function xmlText(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

test("the report's charts fit 1200 px, name every tool whole and draw every transfer bar", async (t) => {
  const run = await loadRun();
  run.benchmarks.push(STREAMS_SERIES);
  const out = await mkdtemp(join(tmpdir(), "teleport-report-charts-"));
  t.after(() => rm(out, { recursive: true, force: true }));
  const baseline = compareWithBaseline(run, earlierRun(run), "earlier/results.json");
  const report = await writeReport(run, out, baseline);

  const files = report.chartPaths.map((path) => path.slice(out.length + 1));
  assert.deepEqual(files, [
    "ratios.svg",
    "throughput.svg",
    "micro.svg",
    "parallel_streams-1.svg",
    "baseline.svg",
  ]);
  const svgs = new Map<string, string>();
  for (const file of files) {
    const svg = await readFile(join(out, file), "utf8");
    svgs.set(file, svg);
    const size = svgSize(svg);
    assert.ok(size.width <= MAX_WIDTH && size.width >= 400, `${file} is ${size.width} px wide`);
    assert.ok(!svg.includes("…"), `${file} cuts a label short`);
    const png = new Resvg(svg, { background: "white" }).render();
    assert.ok(png.width <= MAX_WIDTH, `${file} renders ${png.width} px wide`);
    await writeFile(join(out, file.replace(/svg$/, "png")), png.asPng());
  }

  const throughput = svgs.get("throughput.svg") ?? "";
  const transferBars = bars(throughput);
  const transfers = run.benchmarks.flatMap((record) =>
    record.name === "micro" || record.outcome.status !== "ok"
      ? []
      : record.outcome.figures.filter((entry) => typeof entry.megabytesPerSecond === "number"),
  );
  assert.equal(transferBars.length, transfers.length, "a bar for every transfer figure");
  for (const bar of transferBars) {
    assert.ok(bar.length >= MIN_BAR_PX.length, `bar "${bar.label}" is ${bar.length} px long`);
    assert.ok(bar.thickness >= MIN_BAR_PX.thickness, `bar "${bar.label}" is ${bar.thickness} px thick`);
  }
  for (const entry of transfers)
    assert.ok(throughput.includes(`>${xmlText(entry.tool)}</text>`), `tool "${entry.tool}" named whole`);
});

test("the ratio summary has teleport over its best same-run peer for each benchmark with peers", async () => {
  const run = await loadRun();
  const bulk = run.benchmarks.find((record) => record.name === "bulk_1gib");
  assert.ok(bulk !== undefined);
  const best = bestPeerRatio(bulk);
  // bulk_1gib in that run, median seconds: teleport 1.028, rsync-daemon 0.341, scp 1.046.
  assert.equal(best?.peer, "rsync-daemon");
  assert.ok(best !== null && best.ratio > 0.3 && best.ratio < 0.36, `${best?.ratio}`);
  const out = await mkdtemp(join(tmpdir(), "teleport-report-ratios-"));
  try {
    await writeReport(run, out, null);
    const ratios = await readFile(join(out, "ratios.svg"), "utf8");
    for (const record of run.benchmarks) {
      const ratio = bestPeerRatio(record);
      if (ratio !== null) assert.ok(ratios.includes(`>${xmlText(`${record.name} vs ${ratio.peer}`)}</text>`));
    }
    assert.ok(!ratios.includes(">micro vs"), "micro has no peers to compare with");
    const markdown = await readFile(join(out, "report.md"), "utf8");
    assert.match(markdown, /!\[teleport \/ best peer, same run\]\(ratios\.svg\)/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test("--baseline: the report shows the baseline's ratios beside this run's, the regression marked", async () => {
  const run = await loadRun();
  const out = await mkdtemp(join(tmpdir(), "teleport-report-baseline-"));
  try {
    await writeReport(run, out, compareWithBaseline(run, earlierRun(run), "earlier/results.json"));
    const markdown = await readFile(join(out, "report.md"), "utf8");
    const section = markdown.slice(markdown.indexOf("## Against baseline"));
    assert.match(section, /^!\[Against the baseline\]\(baseline\.svg\)$/m);
    const svg = await readFile(join(out, "baseline.svg"), "utf8");
    const rows = bars(svg);
    const speed = rows.filter((bar) => bar.label.includes("bulk_1gib: speed vs scp (REGRESSED)"));
    assert.equal(speed.length, 2, "the regressed ratio: one bar for the baseline, one for this run");
    assert.ok(
      rows.some((bar) => bar.label.includes("run: baseline")) &&
        rows.some((bar) => bar.label.includes("run: this run")),
    );
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
