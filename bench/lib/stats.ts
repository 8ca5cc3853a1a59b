/**
 * Medians, spreads and the figures built from them. A median of several runs is the figure; the
 * min-max range shows how far to trust it, and a wide range flags the run as noisy.
 */
import type { Figure } from "./types.js";

/** (max - min) / median above this marks a figure as noisy. */
export const NOISY_SPREAD = 0.25;

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const upper = sorted[middle];
  if (upper === undefined) throw new Error("median of no values");
  const lower = sorted[middle - 1];
  return sorted.length % 2 === 1 || lower === undefined ? upper : (lower + upper) / 2;
}

export function minimum(values: readonly number[]): number {
  if (values.length === 0) throw new Error("minimum of no values");
  return Math.min(...values);
}

export function maximum(values: readonly number[]): number {
  if (values.length === 0) throw new Error("maximum of no values");
  return Math.max(...values);
}

/** The value at quantile `q` (0..1) of `values`, by nearest rank. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) throw new Error("quantile of no values");
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

/** Median of the values that are known; null when none is. */
export function medianOfKnown(values: readonly (number | null | undefined)[]): number | null {
  const known = values.filter((value): value is number => typeof value === "number");
  return known.length === 0 ? null : median(known);
}

/** Largest of the values that are known; null when none is. */
export function maximumOfKnown(values: readonly (number | null | undefined)[]): number | null {
  const known = values.filter((value): value is number => typeof value === "number");
  return known.length === 0 ? null : maximum(known);
}

/** What runs cost: CPU seconds and peak RSS of client and server, null where not measured. */
export interface RunCost {
  clientCpuSeconds: number | null;
  clientPeakRssBytes: number | null;
  serverCpuSeconds: number | null;
  serverPeakRssBytes: number | null;
}

/** The cost over several runs: the median CPU seconds and the largest peak RSS. */
export function costOfRuns(runs: readonly Partial<RunCost>[]): RunCost {
  return {
    clientCpuSeconds: medianOfKnown(runs.map((run) => run.clientCpuSeconds)),
    clientPeakRssBytes: maximumOfKnown(runs.map((run) => run.clientPeakRssBytes)),
    serverCpuSeconds: medianOfKnown(runs.map((run) => run.serverCpuSeconds)),
    serverPeakRssBytes: maximumOfKnown(runs.map((run) => run.serverPeakRssBytes)),
  };
}

/** A figure from its samples: median, min, max and the noisy flag. */
export function figure(
  fields: Omit<Figure, "median" | "min" | "max" | "noisy" | "samples">,
  samples: readonly number[],
): Figure {
  const mid = median(samples);
  const min = minimum(samples);
  const max = maximum(samples);
  return {
    ...fields,
    samples: [...samples],
    median: mid,
    min,
    max,
    noisy: samples.length > 1 && mid > 0 && (max - min) / mid > NOISY_SPREAD,
  };
}

/** A figure of timed runs: one sample per run, with what the runs cost (costOfRuns). */
export function runsFigure(
  fields: Omit<Figure, "median" | "min" | "max" | "noisy" | "samples" | keyof RunCost>,
  runs: readonly Partial<RunCost>[],
  samples: readonly number[],
): Figure {
  return figure({ ...fields, ...costOfRuns(runs) }, samples);
}
