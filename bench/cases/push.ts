/**
 * Pushes on loopback: `teleport push` into a host started with --allow-upload, beside `rsync`
 * pushing to an rsync daemon that takes uploads and `scp` uploading to a private sshd, the same
 * payload, each tool once per round in rotating order after a warm-up round. Every copy is
 * checked against the payload before its time counts. Each teleport run gets a fresh host
 * state (TELEPORT_HOME) on both sides and an empty folder: a cold upload, as the peers' are, not
 * one the host's chunk index could turn into local copies.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { CommandSpec } from "../lib/measure.js";
import { ensureRandomFile, ensureRandomTree, type Payload } from "../lib/payload.js";
import { startRsyncDaemon, startSshServer, whyUnavailable } from "../lib/peers.js";
import { makeTempDir, type ServerProcess, treeScratchParent, waitUntil } from "../lib/processes.js";
import { parseRsyncStats } from "../lib/rsync-stats.js";
import type { RunCost } from "../lib/stats.js";
import { medianOfKnown, runsFigure } from "../lib/stats.js";
import { startTeleportHost } from "../lib/teleport.js";
import { errorMessage, measuredCopy, runRounds, SSH_PACKAGES } from "../lib/transfer.js";
import type { BenchContext, Benchmark, BenchOutcome, Check, Figure, Ratio } from "../lib/types.js";
import { describeTree, realTree } from "./real-tree/trees.js";

const MiB = 1024 * 1024;

/** One run's receiving side: its server, and the command that pushes the payload into `runDir`. */
interface Receiver {
  server: ServerProcess;
  command: CommandSpec;
  stop(): Promise<void>;
}

interface PushTool {
  name: string;
  role: Figure["role"];
  packages: readonly string[];
  /** Starts what receives one run into `runDir` (the folder the copy lands in). */
  receive(context: BenchContext, payload: Payload, runDir: string): Promise<Receiver>;
  /** What the run moved over the network, from the pusher's output, where it says. */
  wireBytes?(stdout: string): number | null;
}

/** What `runDir` holds before a run (the dedup case: the same bytes under another name). */
type Seed = (runDir: string, payload: Payload) => Promise<void>;

/** A fresh `teleport host --allow-upload` per run: the push is then a cold one. */
const teleportPush: PushTool = {
  name: "teleport",
  role: "subject",
  packages: [],
  receive: async ({ cli }, payload, runDir) => {
    const host = await startTeleportHost(cli, runDir, { hostArgs: ["--allow-upload"] });
    // The host's share walk, which lets an upload dedup against the share, is done before timing.
    await waitUntil(
      "the host to index its share",
      async () => host.server.logTail(50).includes("share indexed"),
      {
        timeoutMs: 120_000,
        server: host.server,
      },
    );
    const pusherHome = mkdtempSync(join(runDir, "..", ".pusher-"));
    return {
      server: host.server,
      command: {
        command: process.execPath,
        // A folder's contents go into --path; a file lands in the share's root under its name.
        args: [
          cli,
          "push",
          payload.path,
          host.writeLink,
          ...(payload.files === 1 ? [] : ["--path", payload.name]),
          "--json",
        ],
        env: { ...process.env, TELEPORT_HOME: pusherHome },
      },
      stop: async () => {
        await host.stop();
        rmSync(pusherHome, { recursive: true, force: true });
      },
    };
  },
  wireBytes: (stdout) => (JSON.parse(stdout) as { bytesFromNetwork: number }).bytesFromNetwork,
};

const rsyncDaemonPush: PushTool = {
  name: "rsync-daemon",
  role: "peer",
  packages: ["rsync"],
  wireBytes: (stdout) => parseRsyncStats(stdout).bytesSent,
  receive: async (_context, payload, runDir) => {
    const daemon = await startRsyncDaemon(runDir, undefined, true);
    return {
      server: daemon.server,
      command: { command: "rsync", args: ["-a", "--stats", payload.path, `${daemon.moduleUrl}/`] },
      stop: () => daemon.stop(),
    };
  },
};

const scpPush: PushTool = {
  name: "scp",
  role: "peer",
  packages: SSH_PACKAGES,
  receive: async (_context, payload, runDir) => {
    const ssh = await startSshServer();
    return {
      server: ssh.server,
      command: {
        command: "scp",
        args: [...ssh.scpArgs, "-r", "-p", payload.path, ssh.remotePath(`${runDir}/`)],
      },
      stop: () => ssh.stop(),
    };
  },
};

const PUSH_TOOLS = [teleportPush, rsyncDaemonPush, scpPush];

interface Contender {
  name: string;
  failure: string | null;
  tool: PushTool;
  runs: (RunCost & { wallSeconds: number; wireBytes: number | null })[];
}

/** Pushes `payload` with every tool that can run here, `context.runs` timed rounds after a warm-up. */
async function comparePushes(
  context: BenchContext,
  payload: Payload,
  seed?: Seed,
  tools: readonly PushTool[] = PUSH_TOOLS,
): Promise<BenchOutcome> {
  const notes: string[] = [];
  const contenders: Contender[] = [];
  for (const tool of tools) {
    const missing = whyUnavailable(context.unavailable, tool.packages);
    if (missing === null) contenders.push({ name: tool.name, failure: null, tool, runs: [] });
    else notes.push(`${tool.name}: skipped: ${missing}`);
  }
  const scratch = makeTempDir("push", treeScratchParent(payload.bytes));
  try {
    await runRounds(context, contenders, async (contender, round, label) => {
      const runDir = join(scratch.path, `${contender.name}-${round}`);
      mkdirSync(runDir, { recursive: true });
      await seed?.(runDir, payload);
      const receiver = await contender.tool.receive(context, payload, runDir);
      try {
        const copy = join(runDir, payload.name);
        const { client, ...run } = await measuredCopy(receiver.command, receiver.server, payload, copy);
        const wireBytes = contender.tool.wireBytes?.(client.stdout) ?? null;
        const sent = wireBytes === null ? "" : `, ${wireBytes} bytes sent`;
        context.log(`${label}: ${run.wallSeconds.toFixed(3)} s${sent}`);
        if (round > 0) contender.runs.push({ ...run, wireBytes });
      } finally {
        await receiver.stop();
        rmSync(runDir, { recursive: true, force: true });
      }
    });
  } finally {
    scratch.remove();
  }
  return summarize(payload, contenders, notes);
}

function summarize(payload: Payload, contenders: readonly Contender[], notes: string[]): BenchOutcome {
  const figures: Figure[] = [];
  for (const { tool, runs, failure } of contenders) {
    if (failure !== null) notes.push(`${tool.name}: failed: ${failure}`);
    if (failure !== null || runs.length === 0) continue;
    const seconds = runs.map((run) => run.wallSeconds);
    const result = runsFigure(
      { tool: tool.name, role: tool.role, metric: "seconds", better: "lower" },
      runs,
      seconds,
    );
    result.megabytesPerSecond = payload.bytes / 1e6 / result.median;
    const wireBytes = medianOfKnown(runs.map((run) => run.wireBytes));
    result.details = {
      filesPerSecond: payload.files / result.median,
      ...(wireBytes === null ? {} : { wireBytes }),
    };
    figures.push(result);
  }
  const subject = figures.find((candidate) => candidate.role === "subject");
  if (subject === undefined)
    return { status: "failed", reason: notes.join("; ") || "teleport produced no figure" };
  const ratios: Ratio[] = figures
    .filter((other) => other !== subject)
    .map((other) => ({ name: `speed vs ${other.tool}`, value: other.median / subject.median }));
  const checks: Check[] = figures
    .filter((other) => other !== subject)
    .map((other) => {
      const ratio = other.median / subject.median;
      return { description: `faster than ${other.tool} push: ${ratio.toFixed(2)}x`, met: ratio >= 1 };
    });
  return {
    status: "ok",
    figures,
    ratios,
    checks,
    notes,
    details: { payload: { name: payload.name, bytes: payload.bytes, files: payload.files } },
  };
}

export const pushBulk1GiB: Benchmark = {
  name: "push_bulk_1gib",
  title: "cold push of one 1 GiB random file (quick: 128 MiB)",
  target: "beside rsync to a daemon and scp, same run",
  quick: false,
  packages: ["rsync", ...SSH_PACKAGES],
  run: async (context) => {
    const bytes = context.quick ? 128 * MiB : 1024 * MiB;
    const payload = await ensureRandomFile(join(context.workDir, `file-${bytes / MiB}m`, "file.bin"), bytes);
    return comparePushes(context, payload).catch((error: unknown) => ({
      status: "failed" as const,
      reason: errorMessage(error),
    }));
  },
};

export const pushManySmall: Benchmark = {
  name: "push_many_small",
  title: "cold push of 20,000 files of 10 KB (quick: 1,000)",
  target: "beside rsync to a daemon and scp, same run",
  quick: false,
  packages: ["rsync", ...SSH_PACKAGES],
  run: async (context) => {
    const count = context.quick ? 1000 : 20_000;
    const payload = await ensureRandomTree(
      join(context.workDir, "trees"),
      `small-${count}`,
      [{ count, bytes: 10_000 }],
      1000,
    );
    return comparePushes(context, payload).catch((error: unknown) => ({
      status: "failed" as const,
      reason: errorMessage(error),
    }));
  },
};

/**
 * The host already holds the file's bytes under another name (`held.bin` in its share): teleport
 * finds them in its index and moves nothing; rsync, pushing a name the module does not have,
 * sends the file.
 */
export const pushDedup1GiB: Benchmark = {
  name: "push_dedup_1gib",
  title: "push of a 1 GiB file the host holds under another name (quick: 128 MiB)",
  target: "about 0 bytes over the network",
  quick: false,
  packages: ["rsync"],
  run: async (context) => {
    const bytes = context.quick ? 128 * MiB : 1024 * MiB;
    const payload = await ensureRandomFile(join(context.workDir, `file-${bytes / MiB}m`, "file.bin"), bytes);
    const held: Seed = async (runDir, { path }) => copyFileSync(path, join(runDir, "held.bin"));
    const outcome = await comparePushes(context, payload, held, [teleportPush, rsyncDaemonPush]).catch(
      (error: unknown) => ({ status: "failed" as const, reason: errorMessage(error) }),
    );
    if (outcome.status !== "ok") return outcome;
    const teleport = outcome.figures.find((figure) => figure.role === "subject");
    const sent = Number(teleport?.details?.wireBytes ?? Number.NaN);
    outcome.checks.push({
      description: `<= 0.1% of the file sent: ${sent} bytes`,
      met: sent <= bytes / 1000,
    });
    return outcome;
  },
};

/** A real tree, mostly small files: the case push was never measured on before. */
export const pushRealTree: Benchmark = {
  name: "push_real_tree",
  title: "cold push of a real tree, linux-source-6.1 (78,600 files, 1.3 GB; quick: postgresql-doc-15)",
  target: "beside rsync to a daemon and scp, same run",
  quick: false,
  packages: ["rsync", ...SSH_PACKAGES],
  run: async (context) => {
    const tree = await realTree(context);
    if ("unavailable" in tree) return { status: "skipped", reason: tree.unavailable };
    const outcome = await comparePushes(context, tree.next).catch((error: unknown) => ({
      status: "failed" as const,
      reason: errorMessage(error),
    }));
    if (outcome.status === "ok") outcome.notes = [describeTree(tree, "next"), ...(outcome.notes ?? [])];
    return outcome;
  },
};

export const pushBenchmarks: readonly Benchmark[] = [
  pushBulk1GiB,
  pushManySmall,
  pushDedup1GiB,
  pushRealTree,
];
