/**
 * One WAN benchmark on one emulated link: bring the link up, start the servers in host b,
 * measure the contenders from host a in rotating rounds, report throughput figures, and take
 * everything down again whatever happens. Also the ratios and checks the WAN benchmarks share.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  bringUpLink,
  describeLink,
  findNetsim,
  type LinkSettings,
  type NetsimLink,
  tcpGoodputMbit,
  whyNoNetsim,
} from "../../lib/netsim.js";
import { makeTempDir } from "../../lib/processes.js";
import { figure, runsFigure } from "../../lib/stats.js";
import { errorMessage, type RoundEntry, runRounds } from "../../lib/transfer.js";
import type { BenchContext, BenchOutcome, Check, Figure, Ratio } from "../../lib/types.js";
import type { Contender, Sample } from "./contender.js";
import { ensurePayloadLadder, MiB } from "./ladder.js";
import { closeSession, openSession, type WanSession } from "./session.js";

/** The Debian packages every WAN benchmark asks for. */
export const WAN_PACKAGES = ["iperf3", "rsync", "time"] as const;

export const ONE_GBIT_50MS: LinkSettings = { rateMbit: 1000, delayMs: 25, loss: 0 };
export const LOSSY_RENO: LinkSettings = { ...ONE_GBIT_50MS, loss: 0.001, congestionControl: "reno" };

interface Measured extends RoundEntry {
  contender: Contender;
  warmUps: Sample[];
  samples: Sample[];
}

export interface LinkRun {
  figures: Figure[];
  byTool: Map<string, Figure>;
  measured: Measured[];
  session: WanSession;
}

export interface OnLinkOptions {
  /** Builds the contenders once the servers run. */
  contenders(session: WanSession): Contender[];
  /** Turns the figures into the benchmark's outcome. */
  report(run: LinkRun): BenchOutcome;
  /** Extra teleport hosts to start: their `host` options, by name (WanSession.variants). */
  hostVariants?: Record<string, string[]>;
  /** The folder the servers share instead of the payload ladder (which is then not made). */
  sharedDir?: string;
}

/** Runs benchmark `name` on a link with `settings`; skipped where netsim cannot run. */
export async function onLink(
  name: string,
  settings: LinkSettings,
  context: BenchContext,
  options: OnLinkOptions,
): Promise<BenchOutcome> {
  const why = whyNoNetsim(context.repoRoot);
  const netsim = findNetsim(context.repoRoot);
  if (why !== null || netsim === null) return { status: "skipped", reason: why ?? "netsim not found" };
  const temp = makeTempDir(`wan-${name}`);
  let link: NetsimLink | undefined;
  try {
    const ladder =
      options.sharedDir === undefined
        ? await ensurePayloadLadder(context.workDir)
        : { dir: options.sharedDir, files: [] };
    link = await bringUpLink(netsim, `tb-${process.pid}-${name}`, settings);
    context.log(`${name}: link up: ${describeLink(settings)}`);
    const scratch = join(temp.path, "scratch");
    mkdirSync(scratch);
    const session = await openSession(context, link, ladder, scratch, options.hostVariants ?? {});
    try {
      return await measureOnLink(name, session, options);
    } finally {
      await closeSession(session);
    }
  } catch (error) {
    return { status: "failed", reason: errorMessage(error) };
  } finally {
    await link?.down();
    temp.remove();
  }
}

async function measureOnLink(
  name: string,
  session: WanSession,
  options: OnLinkOptions,
): Promise<BenchOutcome> {
  const { context, link } = session;
  const measured: Measured[] = options.contenders(session).map((contender) => ({
    name: contender.tool,
    failure: null,
    contender,
    warmUps: [],
    samples: [],
  }));
  await runRounds(
    context,
    measured,
    async (entry, round, label) => {
      const samples = round === 0 ? await entry.contender.warmUp() : [await entry.contender.measure()];
      if (round === 0) entry.warmUps = samples;
      else entry.samples.push(...samples);
      for (const sample of samples) context.log(`${label}: ${describeSample(sample)}`);
    },
    `${name}: `,
  );
  const figures = measured.flatMap((entry) => toFigure(entry) ?? []);
  figures.push(linkFigure(link.settings));
  const byTool = new Map(figures.map((entry) => [entry.tool, entry]));
  const outcome = options.report({ figures, byTool, measured, session });
  if (outcome.status !== "ok") return outcome;
  const failures = measured.flatMap((entry) =>
    entry.failure === null ? [] : [`${entry.contender.tool} failed: ${entry.failure}`],
  );
  const details = {
    link: describeLink(link.settings),
    congestionControl: await link.congestionControl("a"),
    forwarder: link.counters(),
    ...outcome.details,
  };
  return { ...outcome, notes: [...session.notes, ...failures, ...(outcome.notes ?? [])], details };
}

function describeSample(sample: Sample): string {
  const bytes = sample.details.payloadBytes;
  const payload = typeof bytes === "number" ? `${bytes / MiB} MiB in ` : "";
  const rerun = sample.details.replacedShortRun === undefined ? "" : ", after a run too short to count";
  return `${sample.mbit.toFixed(1)} Mbit/s (${payload}${sample.wallSeconds.toFixed(2)} s${rerun})`;
}

function toFigure({ contender, warmUps, samples }: Measured): Figure | null {
  if (samples.length === 0) return null;
  const result = runsFigure(
    {
      tool: contender.tool,
      role: contender.role,
      metric: "Mbit/s",
      better: "higher",
      details: {
        ...contender.details(),
        wallSeconds: samples.map((sample) => sample.wallSeconds),
        runs: samples.map((sample) => sample.details),
        warmUps: warmUps.map((sample) => ({ mbit: sample.mbit, ...sample.details })),
      },
    },
    samples,
    samples.map((sample) => sample.mbit),
  );
  return contender.transfer ? { ...result, megabytesPerSecond: result.median / 8 } : result;
}

function linkFigure(settings: LinkSettings): Figure {
  return figure(
    {
      tool: "link",
      role: "limit",
      metric: "Mbit/s",
      better: "higher",
      details: { link: describeLink(settings), tcpGoodputMbit: tcpGoodputMbit(settings) },
    },
    [settings.rateMbit],
  );
}

/**
 * The figures of `tools`, in that order, or the failed outcome that says why one is missing: a
 * benchmark cannot report without its subjects.
 */
export function requireFigures<const Tools extends readonly string[]>(
  { byTool, measured }: LinkRun,
  tools: Tools,
  subject = "teleport",
): { figures: { [Index in keyof Tools]: Figure } } | { failed: BenchOutcome } {
  const figures = tools.flatMap((tool) => byTool.get(tool) ?? []);
  // One figure per tool, in order, when none is missing.
  if (figures.length === tools.length) return { figures: figures as { [Index in keyof Tools]: Figure } };
  const failures = measured.flatMap((entry) =>
    tools.includes(entry.contender.tool) && entry.failure !== null ? [entry.failure] : [],
  );
  return { failed: { status: "failed", reason: `${subject}: ${failures.join("; ") || "no timed run"}` } };
}

/** The ratios every WAN benchmark reports for `subject`, against whichever peers ran. */
export function throughputRatios(
  subject: Figure,
  settings: LinkSettings,
  byTool: Map<string, Figure>,
): Ratio[] {
  const ratios: Ratio[] = [{ name: "throughput / link rate", value: subject.median / settings.rateMbit }];
  const rsync = byTool.get("rsync-daemon");
  if (rsync !== undefined)
    ratios.push({ name: "throughput vs rsync-daemon", value: subject.median / rsync.median });
  const iperf = bestIperf(byTool);
  if (iperf !== undefined)
    ratios.push({ name: "throughput vs iperf3", value: subject.median / iperf.median });
  return ratios;
}

/** The practical limit: the better of iperf3's one-stream and eight-stream figures. */
function bestIperf(byTool: Map<string, Figure>): Figure | undefined {
  const iperfs = [...byTool.values()].filter((entry) => entry.tool.startsWith("iperf3"));
  return iperfs.sort((a, b) => b.median - a.median)[0];
}

export function linkShareCheck(subject: Figure, settings: LinkSettings, share: number): Check {
  const achieved = subject.median / settings.rateMbit;
  return {
    description:
      `${subject.tool} >= ${share * 100}% of link rate (${settings.rateMbit} Mbit/s): ` +
      `${subject.median.toFixed(1)} Mbit/s = ${(achieved * 100).toFixed(1)}%`,
    met: achieved >= share,
  };
}

/**
 * Adds to `checks` that `subject` reaches `factor` times a single TCP stream (the rsync daemon);
 * where rsync has no figure in this run, a note instead: an unmeasured target is not a failed one.
 */
export function checkRsyncMultiple(
  subject: Figure,
  byTool: Map<string, Figure>,
  factor: number,
  checks: Check[],
  notes: string[],
): void {
  const rsync = byTool.get("rsync-daemon");
  if (rsync === undefined) {
    notes.push(`>= ${factor}x rsync not checked: rsync-daemon has no figure`);
    return;
  }
  const ratio = subject.median / rsync.median;
  checks.push({
    description:
      `${subject.tool} >= ${factor}x a single TCP stream (rsync-daemon ${rsync.median.toFixed(1)} Mbit/s): ` +
      `${ratio.toFixed(1)}x`,
    met: ratio >= factor,
  });
}
