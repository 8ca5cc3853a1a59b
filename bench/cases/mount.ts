/**
 * `teleport mount` beside sshfs and `rclone mount` (an sftp remote), both over the private sshd,
 * in the same run (issue 25): sequential reads of a random file cold, re-read in the same mount
 * and warm after a remount (cache in memory, cache on disk), first byte and random 4 KiB reads,
 * and over the real Linux tree `find`, a stat of every file and `grep -r`. On loopback, and with
 * the servers in host b of a 50 ms netsim link (a folder of the tree there: sshfs walks it one
 * round trip per request). Reported as ratios against sshfs, and the sequential reads against
 * their physical limits of the same run: the disk's read of as many bytes, `teleport pull`.
 */
import { loadavg } from "node:os";
import { isTeleportError } from "../../src/errors.js";
import { loadFuse } from "../../src/mount/binding.js";
import { bringUpLink, describeLink, findNetsim, type NetsimLink, whyNoNetsim } from "../lib/netsim.js";
import { figure } from "../lib/stats.js";
import { errorMessage, runRounds } from "../lib/transfer.js";
import type { BenchContext, Benchmark, BenchOutcome, Check, Figure, Ratio } from "../lib/types.js";
import { MiB, type MountScale, openMountSession } from "./mount/session.js";
import { METRICS, type MetricKey, measureContender, treeAnswers } from "./mount/workloads.js";
import { ONE_GBIT_50MS } from "./wan/on-link.js";

const MOUNT_PACKAGES = ["sshfs", "rclone", "openssh-server", "openssh-client"] as const;

/**
 * The targets, as multiples of sshfs (times: sshfs's over teleport's), and how close to
 * its physical limit of the same run a sequential read must come (warm: the disk's read of as
 * many bytes; cold: `teleport pull`, the CLI's own fastest path, which a mount cannot beat).
 */
const TARGETS = { sequentialCold: 2, sequentialWarm: 5, wanGrep: 1, randomP50Ms: 1, nearLimit: 0.7 } as const;

export const mountLoopback: Benchmark = {
  name: "mount_loopback",
  title:
    "teleport mount beside sshfs and rclone mount on loopback: 1 GiB sequential cold, re-read and warm (beside the disk and teleport pull), first byte, random 4 KiB, find/stat/grep -r over linux-source-6.1 (quick: 64 MiB, postgresql-doc-15)",
  target: `sequential cold >= ${TARGETS.sequentialCold}x sshfs and >= ${TARGETS.nearLimit}x teleport pull, warm (cache on disk) >= ${TARGETS.sequentialWarm}x sshfs and >= ${TARGETS.nearLimit}x the disk's read, random 4 KiB p50 < ${TARGETS.randomP50Ms} ms`,
  quick: true,
  packages: MOUNT_PACKAGES,
  run: (context) =>
    measureMounts(context, null, {
      fileBytes: context.quick ? 64 * MiB : 1024 * MiB,
      randomReads: context.quick ? 200 : 2000,
      treeFolder: "",
    }),
};

export const mountWan: Benchmark = {
  name: "mount_wan_50ms",
  title:
    "teleport mount beside sshfs and rclone mount over 1 Gbit/s, 50 ms RTT: 128 MiB sequential cold, re-read and warm (beside teleport pull), first byte, random 4 KiB, find/stat/grep -r over linux-source-6.1/kernel",
  target: `grep -r >= sshfs (${TARGETS.wanGrep}x), sequential cold >= ${TARGETS.sequentialCold}x sshfs and >= ${TARGETS.nearLimit}x teleport pull`,
  quick: false,
  packages: MOUNT_PACKAGES,
  run: async (context) => {
    const why = whyNoNetsim(context.repoRoot);
    const netsim = findNetsim(context.repoRoot);
    if (why !== null || netsim === null) return { status: "skipped", reason: why ?? "netsim not found" };
    let link: NetsimLink | undefined;
    try {
      link = await bringUpLink(netsim, `tb-${process.pid}-mount`, ONE_GBIT_50MS);
      context.log(`mount_wan_50ms: link up: ${describeLink(ONE_GBIT_50MS)}`);
      const outcome = await measureMounts(context, link, {
        fileBytes: 128 * MiB,
        randomReads: 100,
        treeFolder: "kernel",
      });
      return outcome.status === "ok"
        ? { ...outcome, details: { ...outcome.details, link: describeLink(ONE_GBIT_50MS) } }
        : outcome;
    } catch (error) {
      return { status: "failed", reason: errorMessage(error) };
    } finally {
      await link?.down();
    }
  },
};

export const mountBenchmarks: Benchmark[] = [mountLoopback, mountWan];

async function measureMounts(
  context: BenchContext,
  link: NetsimLink | null,
  scale: MountScale,
): Promise<BenchOutcome> {
  const cannot = whyCannotMount();
  if (cannot !== null) return { status: "skipped", reason: cannot };
  const runs = context.quick ? { ...context, runs: 1 } : context;
  const session = await openMountSession(context, scale, link);
  try {
    const answers = session.tree === null ? null : await treeAnswers(session, session.tree);
    const samples = new Map<string, Map<MetricKey, number>[]>();
    const roundNotes: string[] = [];
    await runRounds(
      runs,
      session.contenders,
      async (contender, round, label) => {
        const walks = round === 0 ? null : answers;
        // The load around each round, so that a reader can tell a figure taken under load.
        const loadBefore = loadavg()[0] ?? 0;
        const { sample, notes } = await measureContender(session, contender, walks, (line) =>
          context.log(`${label}: ${line}`),
        );
        const load = `load average ${loadBefore.toFixed(2)} -> ${(loadavg()[0] ?? 0).toFixed(2)}`;
        roundNotes.push(`${label.replace(/^mount_\w+: /, "")}: ${[load, ...notes].join("; ")}`);
        if (round > 0) samples.set(contender.name, [...(samples.get(contender.name) ?? []), sample]);
      },
      link === null ? "mount_loopback: " : "mount_wan_50ms: ",
    );
    return outcome(session.contenders, samples, link !== null, [
      `${scale.fileBytes / MiB} MiB random file, ${scale.randomReads} random reads (seeded, the same for every tool)`,
      ...session.notes,
      ...roundNotes,
      ...session.contenders.flatMap((entry) =>
        entry.failure === null ? [] : [`${entry.name} failed: ${entry.failure}`],
      ),
    ]);
  } finally {
    await session.close();
  }
}

/** Why this machine cannot mount (then the benchmark is skipped, saying so), or null. */
function whyCannotMount(): string | null {
  if (process.getuid?.() !== 0) return "mounting sshfs, rclone and teleport side by side needs root";
  try {
    loadFuse();
    return null;
  } catch (error) {
    return `teleport mount cannot run here: ${isTeleportError(error) ? error.detail : errorMessage(error)}`;
  }
}

function outcome(
  contenders: readonly { name: string; file: { details(): Record<string, unknown> } }[],
  samples: Map<string, Map<MetricKey, number>[]>,
  wan: boolean,
  notes: string[],
): BenchOutcome {
  const figures: Figure[] = [];
  for (const contender of contenders) {
    const runs = samples.get(contender.name) ?? [];
    for (const key of Object.keys(METRICS) as MetricKey[]) {
      const values = runs.flatMap((run) => run.get(key) ?? []);
      if (values.length === 0) continue;
      const metric = METRICS[key];
      figures.push(
        figure(
          {
            tool: metric.tool ?? contender.name,
            role: metric.tool !== undefined ? "limit" : contender.name === "teleport" ? "subject" : "peer",
            metric: `${metric.name}, ${metric.unit}`,
            better: metric.better,
            details: { key, ...(metric.tool === undefined ? contender.file.details() : {}) },
          },
          values,
        ),
      );
    }
  }
  const teleport = figures.filter((entry) => entry.tool === "teleport");
  if (teleport.length === 0)
    return {
      status: "failed",
      reason: notes.filter((note) => note.startsWith("teleport")).join("; ") || "teleport produced no figure",
    };
  const ratios = [
    ...ratiosAgainst(figures, "sshfs"),
    ...ratiosAgainst(figures, "rclone mount"),
    ...Object.values(LIMITS).flatMap((limit: LimitRatio) => {
      const value = limitRatio(figures, limit);
      return value === undefined ? [] : [{ name: limitName(limit), value }];
    }),
  ];
  return { status: "ok", figures, ratios, checks: checks(figures, wan), notes };
}

/** A teleport figure and the physical limit of the same run it is set against. */
interface LimitRatio {
  ours: MetricKey;
  limit: MetricKey;
  label: string;
}

const LIMITS = {
  warmVsDisk: { ours: "sequentialWarm", limit: "diskRead", label: "disk read of the same bytes" },
  coldVsPull: { ours: "sequentialCold", limit: "pullCold", label: "teleport pull of the same file" },
  warmVsCacheFiles: {
    ours: "sequentialWarm",
    limit: "cacheFilesRead",
    label: "the cache's own files read back",
  },
} as const satisfies Record<string, LimitRatio>;

function limitName({ ours, label }: LimitRatio): string {
  return `${METRICS[ours].name} vs ${label}`;
}

/** teleport's figure over its limit's (both MB/s), or undefined where either is missing. */
function limitRatio(figures: readonly Figure[], { ours, limit }: LimitRatio): number | undefined {
  const subject = figureOf(figures, "teleport", ours);
  const bound = figures.find((entry) => entry.role === "limit" && entry.details?.key === limit);
  if (subject === undefined || bound === undefined || bound.median <= 0) return undefined;
  return subject.median / bound.median;
}

function figureOf(figures: readonly Figure[], tool: string, key: MetricKey): Figure | undefined {
  return figures.find((entry) => entry.tool === tool && entry.details?.key === key);
}

/** teleport against `peer` on every metric both have; oriented so that above 1 favours teleport. */
function ratiosAgainst(figures: readonly Figure[], peer: string): Ratio[] {
  return (Object.keys(METRICS) as MetricKey[]).flatMap((key) => {
    const ours = figureOf(figures, "teleport", key);
    const theirs = figureOf(figures, peer, key);
    if (ours === undefined || theirs === undefined || ours.median <= 0 || theirs.median <= 0) return [];
    const value =
      METRICS[key].better === "higher" ? ours.median / theirs.median : theirs.median / ours.median;
    return [{ name: `${METRICS[key].name} vs ${peer}`, value }];
  });
}

function checks(figures: readonly Figure[], wan: boolean): Check[] {
  const against = (key: MetricKey, factor: number): Check => {
    const label = `${METRICS[key].name} >= ${factor}x sshfs`;
    const ours = figureOf(figures, "teleport", key);
    const theirs = figureOf(figures, "sshfs", key);
    if (ours === undefined || theirs === undefined)
      return { description: `${label}: not measured`, met: false };
    const ratio =
      METRICS[key].better === "higher" ? ours.median / theirs.median : theirs.median / ours.median;
    return { description: `${label}: ${ratio.toFixed(2)}x`, met: ratio >= factor };
  };
  const nearLimit = (limit: LimitRatio, factor: number): Check => {
    const label = `${limitName(limit)} >= ${factor}x (physical limit)`;
    const ratio = limitRatio(figures, limit);
    return ratio === undefined
      ? { description: `${label}: not measured`, met: false }
      : { description: `${label}: ${ratio.toFixed(2)}x`, met: ratio >= factor };
  };
  const list = [
    against("sequentialCold", TARGETS.sequentialCold),
    nearLimit(LIMITS.coldVsPull, TARGETS.nearLimit),
  ];
  if (wan) {
    list.push(against("grep", TARGETS.wanGrep));
    return list;
  }
  list.push(against("sequentialWarm", TARGETS.sequentialWarm));
  list.push(nearLimit(LIMITS.warmVsDisk, TARGETS.nearLimit));
  const p50 = figureOf(figures, "teleport", "randomP50");
  list.push(
    p50 === undefined
      ? { description: `random 4 KiB p50 < ${TARGETS.randomP50Ms} ms: not measured`, met: false }
      : {
          description: `random 4 KiB p50 < ${TARGETS.randomP50Ms} ms: ${p50.median.toFixed(3)} ms`,
          met: p50.median < TARGETS.randomP50Ms,
        },
  );
  return list;
}
