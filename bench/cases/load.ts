/**
 * One host, many clients at once on loopback: 32 pulls of the same file, then 32 pulls of a file
 * each. Every copy is checked; the figures are each client's throughput (its spread is the
 * fairness: slowest over fastest), the whole round's wall time, and the host's peak RSS and CPU.
 * And stream_fairness: two pulls of two streams each started together, against one pull alone.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type CommandUsage, measureCommand, startServerMeasurement } from "../lib/measure.js";
import { assertIdenticalCopy, ensureRandomFile, type Payload } from "../lib/payload.js";
import { processTree, ticksPerSecond } from "../lib/proc.js";
import { makeTempDir } from "../lib/processes.js";
import { figure, median } from "../lib/stats.js";
import { startTeleportHost, type TeleportHost, teleportPullCommand } from "../lib/teleport.js";
import { errorMessage } from "../lib/transfer.js";
import type { BenchContext, Benchmark, BenchOutcome, Check, Figure, Ratio } from "../lib/types.js";

const MiB = 1024 * 1024;
const HOST_RSS_LIMIT = 300e6;
/** The slowest client gets at least this share of the fastest one's throughput. */
const FAIRNESS_FLOOR = 0.5;

/** CPU ticks of each thread of a process tree (the server may run under a wrapper), by thread id. */
function threadTicks(rootPid: number): Map<string, number> {
  const ticks = new Map<string, number>();
  for (const { pid } of processTree(rootPid)) {
    let threads: string[] = [];
    try {
      threads = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // the process is gone
    }
    for (const thread of threads) addThreadTicks(ticks, pid, thread);
  }
  return ticks;
}

function addThreadTicks(ticks: Map<string, number>, pid: number, thread: string): void {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${thread}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks.set(thread, Number(fields[11]) + Number(fields[12])); // utime + stime
  } catch {
    // the thread ended between listing and reading
  }
}

/**
 * CPU-seconds each thread used between two readings, busiest first, those over 0.1 s: whether
 * the host's serving threads shared the work (one per core) or one carried it.
 */
function threadSeconds(before: Map<string, number>, after: Map<string, number>): number[] {
  return [...after]
    .map(([thread, ticks]) => (ticks - (before.get(thread) ?? 0)) / ticksPerSecond())
    .filter((seconds) => seconds > 0.1)
    .sort((a, b) => b - a)
    .map((seconds) => Math.round(seconds * 100) / 100);
}

interface Round {
  name: string;
  /** The file each client pulls, by client number, relative to the share. */
  fileFor: (client: number) => Payload;
}

async function rounds(context: BenchContext, share: string, clients: number): Promise<Round[]> {
  const sameBytes = (context.quick ? 16 : 256) * MiB;
  const eachBytes = (context.quick ? 4 : 32) * MiB;
  const same = await ensureRandomFile(join(share, "same", "file.bin"), sameBytes);
  const different: Payload[] = [];
  for (let i = 0; i < clients; i++) {
    different.push(await ensureRandomFile(join(share, "different", `file-${i}.bin`), eachBytes));
  }
  return [
    { name: `${clients} clients, the same ${sameBytes / MiB} MiB file`, fileFor: () => same },
    {
      name: `${clients} clients, a ${eachBytes / MiB} MiB file each`,
      fileFor: (client) => different[client] as Payload,
    },
  ];
}

/** Pulls `round` with every client at once; each pull's usage, in client order. */
async function runRound(
  context: BenchContext,
  host: TeleportHost,
  share: string,
  round: Round,
  clients: number,
  pullArgs: readonly string[] = [],
): Promise<CommandUsage[]> {
  const scratch = makeTempDir("load");
  try {
    const pulls = Array.from({ length: clients }, (_, client) => {
      const payload = round.fileFor(client);
      const remotePath = payload.path.slice(share.length + 1);
      const dest = join(scratch.path, `dest-${client}`);
      const home = join(scratch.path, `home-${client}`);
      const pullOptions = ["--path", remotePath, "--no-progress", ...pullArgs];
      return measureCommand(teleportPullCommand(context.cli, host.link, dest, home, pullOptions)).then(
        async (usage) => {
          if (usage.exitCode !== 0)
            throw new Error(`client ${client} failed: ${usage.stderr.trim().slice(-300)}`);
          await assertIdenticalCopy(join(dest, payload.name), payload);
          return usage;
        },
      );
    });
    return await Promise.all(pulls);
  } finally {
    scratch.remove();
  }
}

export const load: Benchmark = {
  name: "load_32_clients",
  title:
    "32 clients pulling at once from one host: the same 256 MiB file, then 32 MiB each (quick: 4 clients)",
  target: "all complete and identical, host peak RSS < 300 MB, slowest client >= half the fastest",
  quick: true,
  run: async (context): Promise<BenchOutcome> => {
    const clients = context.quick ? 4 : 32;
    const share = join(context.workDir, "load");
    const plan = await rounds(context, share, clients);
    const host = await startTeleportHost(context.cli, share);
    const figures: Figure[] = [];
    const ratios: Ratio[] = [];
    const checks: Check[] = [];
    try {
      for (const round of plan) {
        await runRound(context, host, share, round, clients); // warm-up: page cache, host index
        const measurement = await startServerMeasurement(host.server.pid);
        const ticksBefore = threadTicks(host.server.pid);
        const started = process.hrtime.bigint();
        const usages = await runRound(context, host, share, round, clients);
        const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
        const server = await measurement.finish();
        const hostThreadCpuSeconds = threadSeconds(ticksBefore, threadTicks(host.server.pid));
        const rates = usages.map((usage, client) => round.fileFor(client).bytes / 1e6 / usage.wallSeconds);
        const totalBytes = usages.reduce((sum, _, client) => sum + round.fileFor(client).bytes, 0);
        const result = figure(
          {
            tool: `teleport, ${round.name}`,
            role: "subject",
            metric: "MB/s per client",
            better: "higher",
            clientCpuSeconds: usages.reduce((sum, usage) => sum + (usage.cpuSeconds ?? 0), 0),
            clientPeakRssBytes: Math.max(...usages.map((usage) => usage.peakRssBytes ?? 0)),
            serverCpuSeconds: server.cpuSeconds,
            serverPeakRssBytes: server.peakRssBytes,
            details: {
              wallSeconds,
              aggregateMegabytesPerSecond: totalBytes / 1e6 / wallSeconds,
              hostThreadCpuSeconds,
            },
          },
          rates,
        );
        figures.push(result);
        context.log(
          `${round.name}: ${(totalBytes / 1e6 / wallSeconds).toFixed(0)} MB/s in all, per client ` +
            `${result.min.toFixed(1)}-${result.max.toFixed(1)} MB/s, host peak RSS ${((server.peakRssBytes ?? 0) / 1e6).toFixed(0)} MB, ` +
            `host CPU-s by thread ${hostThreadCpuSeconds.join(" ")}`,
        );
        const fairness = result.min / result.max;
        ratios.push({ name: `slowest / fastest client, ${round.name}`, value: fairness });
        // Every copy was checked against its file: a failed or different one ends the benchmark.
        checks.push(
          {
            description: `${round.name}: host peak RSS ${((server.peakRssBytes ?? 0) / 1e6).toFixed(0)} MB < 300 MB`,
            met: server.peakRssBytes !== null && server.peakRssBytes < HOST_RSS_LIMIT,
          },
          {
            description: `${round.name}: slowest client ${(fairness * 100).toFixed(0)}% of the fastest (>= 50%)`,
            met: fairness >= FAIRNESS_FLOOR,
          },
        );
      }
    } catch (error) {
      return { status: "failed", reason: errorMessage(error) };
    } finally {
      await host.stop();
    }
    return { status: "ok", figures, ratios, checks };
  },
};

/** The later of two pulls started together finishes within this multiple of the earlier's time. */
const PAIR_SPREAD_LIMIT = 1.6;
/** Streams per pull: fixed, so that the tuner's choices do not stand in for the host's sharing. */
const PAIR_STREAMS = ["--streams", "2"] as const;

/**
 * Two pulls of one file started at the same moment, two streams each, against one pull alone in
 * the same round: served side by side they finish close together; served one after the other
 * the later would take twice as long as the earlier, and twice the lone pull.
 */
export const streamFairness: Benchmark = {
  name: "stream_fairness",
  title: "two pulls of the same file at once (two streams each) against one alone",
  target: `the later of the two finishes within ${PAIR_SPREAD_LIMIT}x the earlier's time`,
  quick: true,
  run: async (context): Promise<BenchOutcome> => {
    const share = join(context.workDir, "load");
    const bytes = (context.quick ? 64 : 512) * MiB;
    const file = await ensureRandomFile(join(share, "pair", "file.bin"), bytes);
    const round: Round = { name: "pair", fileFor: () => file };
    const host = await startTeleportHost(context.cli, share);
    const alone: number[] = [];
    const earlier: number[] = [];
    const later: number[] = [];
    try {
      for (let run = 0; run <= context.runs; run++) {
        const [lone] = await runRound(context, host, share, round, 1, PAIR_STREAMS);
        const pair = await runRound(context, host, share, round, 2, PAIR_STREAMS);
        const [first, second] = pair.map((usage) => usage.wallSeconds).sort((a, b) => a - b);
        if (lone === undefined || first === undefined || second === undefined)
          throw new Error("a pull is missing");
        context.log(
          `run ${run}: alone ${lone.wallSeconds.toFixed(2)} s, two at once ${first.toFixed(2)} s and ${second.toFixed(2)} s`,
        );
        if (run === 0) continue; // warm-up: page cache, host index
        alone.push(lone.wallSeconds);
        earlier.push(first);
        later.push(second);
      }
    } catch (error) {
      return { status: "failed", reason: errorMessage(error) };
    } finally {
      await host.stop();
    }
    return pairOutcome(bytes, alone, earlier, later);
  },
};

function pairOutcome(bytes: number, alone: number[], earlier: number[], later: number[]): BenchOutcome {
  const seconds = (tool: string, role: Figure["role"], samples: number[]): Figure => ({
    ...figure({ tool, role, metric: "seconds", better: "lower" }, samples),
    megabytesPerSecond: bytes / 1e6 / median(samples),
  });
  const figures = [
    seconds("teleport, earlier of two at once", "subject", earlier),
    seconds("teleport, later of two at once", "subject", later),
    seconds("teleport, one pull alone", "peer", alone),
  ];
  // Per round, so that a slow round does not pair one pull's time with another round's.
  const spread = median(later.map((time, run) => time / (earlier[run] ?? time)));
  const sequential = 2 * median(alone);
  return {
    status: "ok",
    figures,
    ratios: [
      { name: "earlier / later finish, two at once", value: 1 / spread },
      { name: "two at once vs one after the other (later finish)", value: sequential / median(later) },
    ],
    checks: [
      {
        description: `the later of two finished ${spread.toFixed(2)}x the earlier's time (< ${PAIR_SPREAD_LIMIT})`,
        met: spread < PAIR_SPREAD_LIMIT,
      },
    ],
  };
}
