/**
 * Never sending a byte twice, measured: a client holds an old version of a 1 GiB random file
 * (quick: 128 MiB) and pulls a new one. One teleport host and one rsync daemon serve the same
 * share, which holds every version side by side (old/, insert/, rewrite/), so neither server
 * re-reads anything between runs. Each run starts from a fresh client: for teleport a new
 * TELEPORT_HOME and an untimed pull of the old version; for rsync a copy of the old version with
 * its mtime. Then the timed pull of the new version, checked byte for byte.
 *
 * - dedup_identical: the version the client has (rsync: quick check, and --checksum);
 * - dedup_insert: one byte inserted at the start;
 * - dedup_10pct: 10% rewritten in place, in 1 MiB patches at random spots;
 * - dedup_seed: no old copy, but the same bytes under another name, indexed with `teleport index`;
 * - resume: a cold pull killed with SIGKILL halfway, then run again.
 */
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, statSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type CommandSpec, type CommandUsage, measureCommand } from "../lib/measure.js";
import { assertIdenticalCopy, type Payload } from "../lib/payload.js";
import { type RsyncDaemon, startRsyncDaemon, whyUnavailable } from "../lib/peers.js";
import { makeTempDir } from "../lib/processes.js";
import { figure, median } from "../lib/stats.js";
import { parsePullReport, startTeleportHost, type TeleportHost } from "../lib/teleport.js";
import type { BenchContext, Benchmark, BenchOutcome, Check, Figure, Ratio } from "../lib/types.js";
import { prepareVersions, type Version, type Versions } from "./dedup-versions.js";

/** One timed pull and what it moved. */
interface Run {
  seconds: number;
  networkBytes: number;
  details: Record<string, unknown>;
}

interface Scenario {
  /** Untimed: puts the client in its starting state in `dir`; returns the timed command. */
  prepare(dir: string): Promise<CommandSpec>;
  /** Network bytes and details from the timed command's output. */
  read(usage: CommandUsage): { networkBytes: number; details: Record<string, unknown> };
}

async function runScenario(
  context: BenchContext,
  scenario: Scenario,
  expected: Payload,
  label: string,
): Promise<Run[]> {
  const runs: Run[] = [];
  for (let i = 0; i < context.runs; i++) {
    const dir = makeTempDir("dedup-run");
    try {
      const spec = await scenario.prepare(dir.path);
      const usage = await measureCommand(spec);
      if (usage.exitCode !== 0) {
        throw new Error(`${label} exited ${usage.exitCode}: ${usage.stderr.trim().slice(-400)}`);
      }
      await assertIdenticalCopy(join(dir.path, "dest", "data.bin"), expected).catch((err: Error) => {
        throw new Error(`${label}: ${err.message}`);
      });
      runs.push({ seconds: usage.wallSeconds, ...scenario.read(usage) });
    } finally {
      dir.remove();
    }
  }
  return runs;
}

/** The teleport CLI as a client with its own TELEPORT_HOME under `dir`. */
function teleportClient(context: BenchContext, host: TeleportHost, dir: string) {
  const env = { ...process.env, TELEPORT_HOME: join(dir, "home") };
  const dest = join(dir, "dest");
  const pull = (version: Version): CommandSpec => ({
    command: process.execPath,
    args: [context.cli, "pull", host.link, dest, "--path", `${version}/data.bin`, "--json"],
    env,
  });
  return {
    dest,
    env,
    pull,
    /** Runs a command to completion, untimed, and fails loudly if it fails. */
    async run(spec: CommandSpec): Promise<CommandUsage> {
      const usage = await measureCommand(spec);
      if (usage.exitCode !== 0)
        throw new Error(`${spec.args.slice(1, 3).join(" ")} failed: ${usage.stderr.trim()}`);
      return usage;
    },
  };
}

function readTeleport(usage: CommandUsage) {
  const report = parsePullReport(usage.stdout);
  return {
    networkBytes: report.bytesFromNetwork,
    details: {
      bytesReused: report.bytesReused,
      reused: report.reused,
      bytesReadLocally: report.bytesReadLocally,
    },
  };
}

function readRsync(usage: CommandUsage) {
  const received = /Total bytes received: ([\d,]+)/.exec(usage.stdout)?.[1];
  if (received === undefined)
    throw new Error(`rsync --stats printed no byte count: ${usage.stdout.slice(-300)}`);
  return { networkBytes: Number(received.replaceAll(",", "")), details: {} };
}

function toFigure(tool: string, role: Figure["role"], runs: Run[], bytes: number): Figure {
  const network = runs.map((run) => run.networkBytes);
  return figure(
    {
      tool,
      role,
      metric: "seconds",
      better: "lower",
      details: {
        networkBytes: network,
        networkShare: network.map((value) => Number((value / bytes).toFixed(5))),
        ...runs[0]?.details,
      },
    },
    runs.map((run) => run.seconds),
  );
}

interface Servers {
  versions: Versions;
  host: TeleportHost;
  rsync: RsyncDaemon | null;
  rsyncWhyNot: string | null;
}

/**
 * Runs `body` with a teleport host and an rsync daemon serving the versions. The host keeps its
 * TELEPORT_HOME beside the versions, so it hashes them once per machine, not once per benchmark.
 */
async function withServers(context: BenchContext, body: (servers: Servers) => Promise<BenchOutcome>) {
  const versions = await prepareVersions(context);
  const host = await startTeleportHost(context.cli, versions.root, { home: `${versions.root}-host-home` });
  const rsyncWhyNot = whyUnavailable(context.unavailable, ["rsync"]);
  let rsync: RsyncDaemon | null = null;
  try {
    rsync = rsyncWhyNot === null ? await startRsyncDaemon(versions.root) : null;
    // Any hashing the host still has to do happens here, before the timed runs.
    const warm = makeTempDir("dedup-warm");
    try {
      const client = teleportClient(context, host, warm.path);
      for (const version of ["old", "insert", "rewrite"] as const) await client.run(client.pull(version));
    } finally {
      warm.remove();
    }
    return await body({ versions, host, rsync, rsyncWhyNot });
  } finally {
    await host.stop();
    await rsync?.stop();
  }
}

/** A re-pull of `target` by a client holding the old version: teleport and rsync side by side. */
async function repull(
  context: BenchContext,
  { versions, host, rsync, rsyncWhyNot }: Servers,
  target: Version,
  shareLimit: number,
): Promise<BenchOutcome> {
  const expected = versions.payload[target];
  const teleport: Scenario = {
    prepare: async (dir) => {
      const client = teleportClient(context, host, dir);
      await client.run(client.pull("old"));
      return client.pull(target);
    },
    read: readTeleport,
  };
  const figures = [
    toFigure(
      "teleport",
      "subject",
      await runScenario(context, teleport, expected, "teleport"),
      expected.bytes,
    ),
  ];
  const notes: string[] = [];
  if (rsync !== null) {
    const rsyncRuns = async (extra: string[]) =>
      runScenario(
        context,
        {
          prepare: async (dir) => {
            const dest = join(dir, "dest");
            mkdirSync(dest);
            copyFileSync(versions.payload.old.path, join(dest, "data.bin"));
            const { atime, mtime } = statSync(versions.payload.old.path);
            utimesSync(join(dest, "data.bin"), atime, mtime);
            return {
              command: "rsync",
              args: ["-a", "--stats", ...extra, `${rsync.moduleUrl}/${target}/data.bin`, `${dest}/`],
            };
          },
          read: readRsync,
        },
        expected,
        "rsync",
      );
    figures.push(toFigure("rsync daemon (delta)", "peer", await rsyncRuns([]), expected.bytes));
    if (target === "old")
      figures.push(
        toFigure("rsync daemon --checksum", "peer", await rsyncRuns(["--checksum"]), expected.bytes),
      );
  } else {
    notes.push(`rsync skipped: ${rsyncWhyNot}`);
  }
  const subject = figures[0] as Figure;
  const share = median(subject.details?.networkShare as number[]);
  const ratios: Ratio[] = figures.slice(1).map((peer) => ({
    name: `${peer.tool} seconds / teleport seconds`,
    value: peer.median / subject.median,
  }));
  ratios.push({ name: "share of the file over the network", value: share });
  const checks: Check[] = [
    {
      description: `teleport fetched ${(share * 100).toFixed(2)}% of the file (<= ${(shareLimit * 100).toFixed(0)}%)`,
      met: share <= shareLimit,
    },
  ];
  return { status: "ok", figures, ratios, checks, notes };
}

/** A pull of the old version into a fresh client with nothing local: the reference. */
function coldPull(context: BenchContext, host: TeleportHost): Scenario {
  return { prepare: async (dir) => teleportClient(context, host, dir).pull("old"), read: readTeleport };
}

async function seeded(context: BenchContext, { versions, host }: Servers): Promise<BenchOutcome> {
  const old = versions.payload.old;
  const seededPull: Scenario = {
    prepare: async (dir) => {
      const client = teleportClient(context, host, dir);
      mkdirSync(join(dir, "seeds"));
      copyFileSync(old.path, join(dir, "seeds", "renamed.bin"));
      await client.run({
        command: process.execPath,
        args: [context.cli, "index", join(dir, "seeds")],
        env: client.env,
      });
      return client.pull("old");
    },
    read: readTeleport,
  };
  const subject = toFigure(
    "teleport, seeded",
    "subject",
    await runScenario(context, seededPull, old, "seeded"),
    old.bytes,
  );
  const cold = toFigure(
    "teleport, cold",
    "peer",
    await runScenario(context, coldPull(context, host), old, "cold"),
    old.bytes,
  );
  const share = median(subject.details?.networkShare as number[]);
  return {
    status: "ok",
    figures: [subject, cold],
    ratios: [
      { name: "cold seconds / seeded seconds", value: cold.median / subject.median },
      { name: "share of the file over the network", value: share },
    ],
    checks: [
      {
        description: `seeded pull fetched ${(share * 100).toFixed(2)}% of the file (~0)`,
        met: share <= 0.01,
      },
    ],
  };
}

/** Reads how many bytes a process has read so far (sockets and files alike), from /proc. */
function bytesReadBy(pid: number): number | null {
  try {
    const io = readFileSync(`/proc/${pid}/io`, "utf8");
    return Number(/^rchar: (\d+)$/m.exec(io)?.[1] ?? Number.NaN);
  } catch {
    return null;
  }
}

async function resumed(context: BenchContext, { versions, host }: Servers): Promise<BenchOutcome> {
  const old = versions.payload.old;
  let killedAfter: number[] = [];
  const rerun: Scenario = {
    prepare: async (dir) => {
      const client = teleportClient(context, host, dir);
      const spec = client.pull("old");
      const doomed = spawn(spec.command, spec.args, { env: spec.env, stdio: "ignore" });
      const exited = new Promise((resolve) => doomed.once("exit", resolve));
      // Killed once it has read half the file's bytes (from its sockets: nothing local to read).
      let read = 0;
      while (doomed.exitCode === null) {
        read = bytesReadBy(doomed.pid as number) ?? read;
        if (read >= old.bytes / 2) break;
        await sleep(2);
      }
      doomed.kill("SIGKILL");
      await exited;
      killedAfter.push(read);
      return spec;
    },
    read: readTeleport,
  };
  killedAfter = [];
  const runs = await runScenario(context, rerun, old, "resumed pull");
  const subject = toFigure("teleport, rerun after SIGKILL at 50%", "subject", runs, old.bytes);
  const cold = toFigure(
    "teleport, cold",
    "peer",
    await runScenario(context, coldPull(context, host), old, "cold"),
    old.bytes,
  );
  const totals = runs.map((run, i) => ((killedAfter[i] ?? Number.NaN) + run.networkBytes) / old.bytes);
  const total = median(totals);
  const readLocally = Math.max(...runs.map((run) => Number(run.details.bytesReadLocally)));
  subject.details = { ...subject.details, killedAfterBytesRead: killedAfter, totalNetworkShare: totals };
  return {
    status: "ok",
    figures: [subject, cold],
    ratios: [
      { name: "network bytes over both runs / file", value: total },
      { name: "cold seconds / rerun seconds", value: cold.median / subject.median },
    ],
    checks: [
      {
        description: `both runs together read ${total.toFixed(3)}x the file from the network (<= 1.05x; the killed run's count is every byte it read)`,
        met: total <= 1.05,
      },
      {
        description: `the rerun read ${readLocally} bytes of local files: the first run's chunks were neither read nor re-hashed`,
        met: readLocally === 0,
      },
    ],
  };
}

function dedupBenchmark(
  name: string,
  title: string,
  target: string,
  body: (context: BenchContext, servers: Servers) => Promise<BenchOutcome>,
): Benchmark {
  return {
    name,
    title,
    target,
    quick: true,
    packages: ["rsync"],
    run: (context) => withServers(context, (servers) => body(context, servers)),
  };
}

export const dedupBenchmarks: Benchmark[] = [
  dedupBenchmark(
    "dedup_identical",
    "re-pull of an unchanged 1 GiB file (quick: 128 MiB)",
    "< 0.3 s, every chunk accounted for",
    async (context, servers) => {
      const outcome = await repull(context, servers, "old", 0);
      if (outcome.status !== "ok") return outcome;
      const subject = outcome.figures[0] as Figure;
      const reused = subject.details?.bytesReused;
      outcome.checks.push(
        {
          description: `teleport re-pull took ${subject.median.toFixed(3)} s, process start to exit (< 0.3 s)`,
          met: subject.median < 0.3,
        },
        {
          description: `every byte accounted for as reused (${String(reused)} of ${servers.versions.bytes})`,
          met: reused === servers.versions.bytes,
        },
      );
      return outcome;
    },
  ),
  dedupBenchmark(
    "dedup_insert",
    "1 byte inserted at the start of a 1 GiB file (quick: 128 MiB)",
    "<= 1% of the file crosses the network",
    (context, servers) => repull(context, servers, "insert", 0.01),
  ),
  dedupBenchmark(
    "dedup_10pct",
    "10% of a 1 GiB file rewritten in place in 1 MiB patches (quick: 128 MiB)",
    "<= 12% crosses the network",
    (context, servers) => repull(context, servers, "rewrite", 0.12),
  ),
  dedupBenchmark(
    "dedup_seed",
    "a 1 GiB file the client holds under another name, indexed with `teleport index` (quick: 128 MiB)",
    "~0 bytes over the network",
    seeded,
  ),
  dedupBenchmark(
    "resume",
    "pull of a 1 GiB file killed with SIGKILL at 50%, then rerun (quick: 128 MiB)",
    "bytes over the network <= 1.05x the file; the rerun re-reads nothing",
    resumed,
  ),
];
