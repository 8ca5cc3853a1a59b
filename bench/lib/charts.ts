/**
 * The report's charts, as Vega-Lite specs, each readable at about 1000 px:
 * - `ratios.svg`: per benchmark, teleport over its best peer in the same run (1.0 marked);
 * - `throughput.svg`: per transfer benchmark, teleport beside its peers, each on its own scale
 *   (a shared axis would let the fastest benchmark flatten every other bar to a line);
 * - `micro.svg`: the micro benchmarks, apart, for the same reason;
 * - one chart per series a benchmark reports (throughput vs stream count);
 * - `baseline.svg` with `--baseline`: each same-run ratio, the baseline's beside this run's.
 */
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { type BaselineComparison, REGRESSION_THRESHOLD } from "./baseline.js";
import type { BenchRecord, Figure, Series, SuiteResult } from "./types.js";

export interface Chart {
  title: string;
  /** File name in the report's folder. */
  file: string;
  spec: TopLevelSpec;
}

/** One layered chart of a vconcat. */
type LayerPanel = Extract<TopLevelSpec, { layer: unknown }>;

const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";
/** Width of a chart's plotting area; its labels come on top, within 1200 px in all. */
const PLOT_WIDTH = 520;
/** Vega cuts an axis label past its limit (180 px unless set) with an ellipsis; 0 never does. */
const LABEL_LIMIT = 0;
/** Height of one bar's row. */
const ROW_STEP = 22;
/** The benchmark of many small measurements (hashing, codecs, TLS): far faster than any transfer. */
const MICRO = "micro";
const ROLE_COLORS = { domain: ["subject", "peer", "limit"], range: ["#d95f02", "#7570b3", "#999999"] };

/** Every chart of `result`'s report, and the baseline's when there is one. */
export function reportCharts(result: SuiteResult, baseline: BaselineComparison | null): Chart[] {
  const charts: Chart[] = [];
  const ratios = ratioChart(result.benchmarks);
  if (ratios !== null)
    charts.push({ title: "teleport / best peer, same run", file: "ratios.svg", spec: ratios });
  const transfers = result.benchmarks.filter((record) => record.name !== MICRO);
  const throughput = throughputChart(
    transfers,
    "Throughput per benchmark (MB/s, median), each on its own scale",
    "linear",
  );
  if (throughput !== null)
    charts.push({ title: "Throughput per benchmark", file: "throughput.svg", spec: throughput });
  const micro = throughputChart(
    result.benchmarks.filter((record) => record.name === MICRO),
    "Micro benchmarks (MB/s, median; log scale, as they span orders of magnitude)",
    "log",
  );
  if (micro !== null) charts.push({ title: "Micro benchmarks", file: "micro.svg", spec: micro });
  for (const record of result.benchmarks) {
    if (record.outcome.status !== "ok") continue;
    for (const [index, series] of (record.outcome.series ?? []).entries())
      charts.push({
        title: series.title,
        file: `${record.name}-${index + 1}.svg`,
        spec: seriesChart(series),
      });
  }
  if (baseline !== null && baseline.changes.length > 0)
    charts.push({ title: "Against the baseline", file: "baseline.svg", spec: baselineChart(baseline) });
  return charts;
}

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** One panel per benchmark with payload rates: its tools' bars on the benchmark's own scale. */
function throughputChart(
  records: readonly BenchRecord[],
  title: string,
  scale: "linear" | "log",
): TopLevelSpec | null {
  const panels = records.flatMap((record) => {
    if (record.outcome.status !== "ok") return [];
    const values = record.outcome.figures.flatMap(({ tool, role, megabytesPerSecond: mbps }) =>
      typeof mbps === "number" && mbps > 0 ? [{ tool, role, mbps }] : [],
    );
    return values.length === 0 ? [] : [throughputPanel(record.name, values, scale)];
  });
  if (panels.length === 0) return null;
  return {
    $schema: SCHEMA,
    title: { text: title, anchor: "start" },
    vconcat: panels,
    resolve: { scale: { x: "independent", y: "independent" } },
    config: { axis: { labelLimit: LABEL_LIMIT } },
  };
}

function throughputPanel(
  name: string,
  values: { tool: string; role: string; mbps: number }[],
  scale: "linear" | "log",
): LayerPanel {
  const y = { field: "tool", type: "nominal", sort: null, title: null } as const;
  // A log scale has no zero: its bars start at the power of ten below the slowest figure.
  const floor = 10 ** Math.floor(Math.log10(Math.min(...values.map((value) => value.mbps))));
  const x = {
    field: "mbps",
    type: "quantitative",
    title: "MB/s",
    scale: scale === "log" ? { type: "log" as const, domainMin: floor } : { type: "linear" as const },
  } as const;
  return {
    title: { text: name, anchor: "start" as const },
    data: { values },
    width: PLOT_WIDTH,
    height: { step: ROW_STEP },
    layer: [
      {
        mark: { type: "bar" as const },
        encoding: {
          y,
          x,
          ...(scale === "log" ? { x2: { datum: floor } } : {}),
          color: { field: "role", type: "nominal" as const, scale: ROLE_COLORS, legend: { title: null } },
        },
      },
      {
        mark: { type: "text" as const, align: "left" as const, dx: 3 },
        encoding: { y, x, text: { field: "mbps", type: "quantitative" as const, format: ",.0f" } },
      },
    ],
  };
}

/** teleport's figure over its best peer's, oriented so that above 1 favours teleport. */
export function bestPeerRatio(record: BenchRecord): { peer: string; ratio: number } | null {
  if (record.outcome.status !== "ok") return null;
  const subject = record.outcome.figures.find((entry) => entry.role === "subject");
  if (subject === undefined || !(subject.median > 0)) return null;
  const peers = record.outcome.figures.filter(
    (entry) => entry.role === "peer" && entry.metric === subject.metric && entry.median > 0,
  );
  const higher = subject.better === "higher";
  const best = peers.reduce<Figure | undefined>(
    (champion, entry) =>
      champion === undefined || (higher ? entry.median > champion.median : entry.median < champion.median)
        ? entry
        : champion,
    undefined,
  );
  if (best === undefined) return null;
  return { peer: best.tool, ratio: higher ? subject.median / best.median : best.median / subject.median };
}

/** One bar per benchmark with peers, from 1.0 to teleport / best peer, on a log scale. */
function ratioChart(records: readonly BenchRecord[]): TopLevelSpec | null {
  const values = records.flatMap((record) => {
    const best = bestPeerRatio(record);
    return best === null
      ? []
      : [
          {
            row: `${record.name} vs ${best.peer}`,
            ratio: best.ratio,
            ahead: best.ratio >= 1 ? "teleport ahead" : "peer ahead",
          },
        ];
  });
  if (values.length === 0) return null;
  const y = { field: "row", type: "nominal", sort: null, title: null } as const;
  const x = {
    field: "ratio",
    type: "quantitative",
    title: "teleport / best peer (above 1 favours teleport)",
    scale: { type: "log" },
  } as const;
  return {
    $schema: SCHEMA,
    title: { text: "teleport against its best peer, same run", anchor: "start" },
    data: { values },
    width: PLOT_WIDTH,
    height: { step: ROW_STEP },
    layer: [
      {
        mark: "bar",
        encoding: {
          y,
          x,
          x2: { datum: 1 },
          color: {
            field: "ahead",
            type: "nominal",
            scale: { domain: ["teleport ahead", "peer ahead"], range: ["#1b9e77", "#d95f02"] },
            legend: { title: null },
          },
        },
      },
      { mark: { type: "rule", strokeDash: [4, 3] }, encoding: { x: { datum: 1 } } },
      // Each bar's value at its far end from 1.0, clear of the rule.
      {
        transform: [{ filter: "datum.ratio >= 1" }],
        mark: { type: "text", align: "left", dx: 3 },
        encoding: { y, x, text: { field: "ratio", type: "quantitative", format: ".2f" } },
      },
      {
        transform: [{ filter: "datum.ratio < 1" }],
        mark: { type: "text", align: "right", dx: -3 },
        encoding: { y, x, text: { field: "ratio", type: "quantitative", format: ".2f" } },
      },
    ],
    config: { axis: { labelLimit: LABEL_LIMIT } },
  };
}

/**
 * Each ratio the baseline shares with this run: the baseline's bar beside this run's, both
 * drawn relative to the baseline's (its bar is 1.0, so a change reads the same for a ratio of
 * 0.001 as for one of 100), each labelled with its value; the regression threshold is marked.
 */
function baselineChart(baseline: BaselineComparison): TopLevelSpec {
  const values = baseline.changes.flatMap((change) => {
    const row = `${change.benchmark}: ${change.ratio}${change.regressed ? " (REGRESSED)" : ""}`;
    return [
      { row, run: "baseline", relative: 1, value: change.before },
      { row, run: "this run", relative: change.after / change.before, value: change.after },
    ];
  });
  const y = { field: "row", type: "nominal", sort: null, title: null } as const;
  const yOffset = { field: "run", sort: ["baseline", "this run"] };
  const x = { field: "relative", type: "quantitative", title: "ratio relative to the baseline's" } as const;
  return {
    $schema: SCHEMA,
    title: {
      text: `Same-run ratios: baseline of ${baseline.baselineStartedAt} and this run`,
      anchor: "start",
    },
    data: { values },
    width: PLOT_WIDTH - 160,
    height: { step: 28 },
    layer: [
      {
        mark: "bar",
        encoding: {
          y,
          yOffset,
          x,
          color: {
            field: "run",
            type: "nominal",
            scale: { range: ["#999999", "#d95f02"] },
            legend: { title: null },
          },
        },
      },
      {
        mark: { type: "text", align: "left", dx: 3, fontSize: 9 },
        encoding: { y, yOffset, x, text: { field: "value", type: "quantitative", format: ".3~g" } },
      },
      {
        mark: { type: "rule", strokeDash: [4, 3] },
        encoding: { x: { datum: 1 - REGRESSION_THRESHOLD } },
      },
    ],
    config: { axis: { labelLimit: LABEL_LIMIT } },
  };
}

function seriesChart(series: Series): TopLevelSpec {
  const numeric = series.points.every((point) => typeof point.x === "number");
  return {
    $schema: SCHEMA,
    title: { text: series.title, anchor: "start" },
    data: { values: series.points },
    mark: { type: "line", point: true },
    encoding: {
      x: numeric
        ? { field: "x", type: "quantitative", title: series.xLabel, scale: { type: "log", base: 2 } }
        : { field: "x", type: "ordinal", title: series.xLabel, sort: null },
      y: { field: "y", type: "quantitative", title: series.yLabel },
      color: { field: "group", type: "nominal", title: null },
    },
    width: PLOT_WIDTH + 200,
    height: 320,
    config: { axis: { labelLimit: LABEL_LIMIT } },
  };
}
