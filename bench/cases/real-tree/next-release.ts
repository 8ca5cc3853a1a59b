/**
 * real_tree_next: the next release pulled into a fresh copy of the old one, teleport beside the
 * rsync daemon: what each moved over the network (teleport's pull report, rsync's --stats) and
 * how long it took.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { DebianTree } from "../../lib/debian-tree.js";
import type { CommandSpec } from "../../lib/measure.js";
import { assertCopyHolds } from "../../lib/payload.js";
import { startRsyncDaemon } from "../../lib/peers.js";
import { makeTempDir, type ServerProcess, treeScratchParent } from "../../lib/processes.js";
import { parseRsyncStats } from "../../lib/rsync-stats.js";
import { medianOfKnown, type RunCost, runsFigure } from "../../lib/stats.js";
import { parsePullReport, startTeleportHost, teleportPullCommand, uncleanExit } from "../../lib/teleport.js";
import { errorMessage, measuredCopy, type RoundEntry, runRounds } from "../../lib/transfer.js";
import type { BenchContext, Benchmark, BenchOutcome, Check, Figure, Ratio } from "../../lib/types.js";
import { describeTree, fasterThan, realTree, runsFor } from "./trees.js";

/** What one pull of the next release moved, as the tool itself reports it. */
interface MovedBytes {
  /** teleport: bytesFromNetwork; rsync: literal data. */
  contentBytes: number;
  /** teleport: bytesOnWire (chunk data as sent); rsync: total bytes received. */
  wireBytes: number;
  /** teleport: bytes read from local files to reuse them. */
  readLocallyBytes: number | null;
}

interface NextRun extends RunCost, MovedBytes {
  wallSeconds: number;
}

/** A tool pulling the next release into copies of the old one. */
interface NextContender extends RoundEntry {
  role: Figure["role"];
  server: ServerProcess;
  command(destDir: string): CommandSpec;
  movedBytes(stdout: string): MovedBytes;
  stop(): Promise<string | null>;
  runs: NextRun[];
}

async function teleportNextContender(
  context: BenchContext,
  tree: DebianTree,
  homes: string,
): Promise<NextContender> {
  const host = await startTeleportHost(context.cli, tree.next.root);
  return {
    name: "teleport",
    role: "subject",
    failure: null,
    server: host.server,
    // A fresh TELEPORT_HOME per run: the old copy at the destination is all it may reuse.
    command: (destDir) =>
      teleportPullCommand(context.cli, host.link, destDir, mkdtempSync(join(homes, "run-")), [
        "--path",
        tree.next.name,
      ]),
    movedBytes: (stdout) => {
      const report = parsePullReport(stdout);
      return {
        contentBytes: report.bytesFromNetwork,
        wireBytes: report.bytesOnWire,
        readLocallyBytes: report.bytesReadLocally,
      };
    },
    stop: async () => uncleanExit(await host.stop()),
    runs: [],
  };
}

async function rsyncNextContender(tree: DebianTree): Promise<NextContender> {
  const daemon = await startRsyncDaemon(tree.next.root);
  return {
    name: "rsync-daemon",
    role: "peer",
    failure: null,
    server: daemon.server,
    command: (destDir) => ({
      command: "rsync",
      args: ["-a", "--stats", `${daemon.moduleUrl}/${tree.next.name}`, `${destDir}/`],
    }),
    movedBytes: (stdout) => {
      const stats = parseRsyncStats(stdout);
      return { contentBytes: stats.literalBytes, wireBytes: stats.bytesReceived, readLocallyBytes: null };
    },
    stop: async () => {
      await daemon.stop();
      return null;
    },
    runs: [],
  };
}

/**
 * One pull of the next release into a fresh `cp -a` of the old one (mtimes kept, as an rsync
 * user's old copy has them); the copy must then hold every file of the next release.
 */
async function pullNextIntoOld(
  contender: NextContender,
  tree: DebianTree,
  destDir: string,
): Promise<NextRun> {
  rmSync(destDir, { recursive: true, force: true });
  mkdirSync(destDir, { recursive: true });
  const copyPath = join(destDir, tree.next.name);
  const copy = spawnSync("cp", ["-a", tree.old.path, copyPath], { encoding: "utf8" });
  if (copy.status !== 0) throw new Error(`cp -a of the old release failed: ${copy.stderr}`);
  try {
    const { client, ...cost } = await measuredCopy(
      contender.command(destDir),
      contender.server,
      tree.next,
      copyPath,
      undefined,
      assertCopyHolds,
    );
    return { ...cost, ...contender.movedBytes(client.stdout) };
  } finally {
    rmSync(destDir, { recursive: true, force: true });
  }
}

export const realTreeNext: Benchmark = {
  name: "real_tree_next",
  title: "next release of linux-source-6.1 pulled into a copy of the old one (quick: postgresql-doc-15)",
  target: "bytes over the network <= rsync's literal data, time <= the rsync daemon's",
  quick: true,
  packages: ["rsync"],
  run: async (context) => {
    const tree = await realTree(context);
    if ("unavailable" in tree) return { status: "skipped", reason: tree.unavailable };
    const scratch = makeTempDir("real-tree-next", treeScratchParent(4 * tree.next.bytes));
    const contenders: NextContender[] = [];
    const notes = [`${describeTree(tree, "old")} -> ${describeTree(tree, "next")}`, ...tree.notes];
    try {
      contenders.push(await teleportNextContender(context, tree, scratch.path));
      try {
        contenders.push(await rsyncNextContender(tree));
      } catch (error) {
        notes.push(`rsync-daemon: failed to start: ${errorMessage(error)}`);
      }
      await runRounds(runsFor(context), contenders, async (contender, round, label) => {
        const run = await pullNextIntoOld(contender, tree, join(scratch.path, `dest-${contender.name}`));
        context.log(
          `${label}: ${run.wallSeconds.toFixed(3)} s, ${(run.contentBytes / 1e6).toFixed(2)} MB content, ` +
            `${(run.wireBytes / 1e6).toFixed(2)} MB on the wire`,
        );
        if (round > 0) contender.runs.push(run);
      });
    } finally {
      for (const contender of contenders) {
        const warning = await contender
          .stop()
          .catch((error: unknown) => `stop failed: ${errorMessage(error)}`);
        if (warning !== null) notes.push(`${contender.name}: ${warning}`);
      }
      scratch.remove();
    }
    for (const contender of contenders)
      if (contender.failure !== null) notes.push(`${contender.name}: failed: ${contender.failure}`);
    return nextOutcome(contenders, notes);
  },
};

function nextFigure(contender: NextContender): Figure {
  const { runs } = contender;
  return runsFigure(
    {
      tool: contender.name,
      role: contender.role,
      metric: "seconds",
      better: "lower",
      details: {
        contentBytes: medianOfKnown(runs.map((run) => run.contentBytes)),
        wireBytes: medianOfKnown(runs.map((run) => run.wireBytes)),
        readLocallyBytes: medianOfKnown(runs.map((run) => run.readLocallyBytes)),
        measures:
          contender.role === "subject"
            ? "contentBytes: bytesFromNetwork; wireBytes: bytesOnWire (pull --json)"
            : "contentBytes: literal data; wireBytes: total bytes received (--stats)",
      },
    },
    runs,
    runs.map((run) => run.wallSeconds),
  );
}

function nextOutcome(contenders: readonly NextContender[], notes: string[]): BenchOutcome {
  const measured = contenders.filter((contender) => contender.runs.length > 0);
  const teleport = measured.find((contender) => contender.role === "subject");
  if (teleport === undefined)
    return { status: "failed", reason: notes.join("; ") || "teleport: no timed run" };
  const figures = measured.map(nextFigure);
  const subject = nextFigure(teleport);
  const rsync = measured.find((contender) => contender.name === "rsync-daemon");
  if (rsync === undefined)
    return {
      status: "ok",
      figures,
      ratios: [],
      checks: [],
      notes: [...notes, "no rsync figure to compare with"],
    };
  const rsyncFigure = nextFigure(rsync);
  const content = (runs: readonly NextRun[]) => medianOfKnown(runs.map((run) => run.contentBytes)) ?? 0;
  const wire = (runs: readonly NextRun[]) => medianOfKnown(runs.map((run) => run.wireBytes)) ?? 0;
  const [teleportContent, rsyncLiteral] = [content(teleport.runs), content(rsync.runs)];
  // Oriented so that above 1 favours teleport; a byte floor keeps a perfect zero finite.
  const ratios: Ratio[] = [
    { name: "speed vs rsync-daemon", value: rsyncFigure.median / subject.median },
    { name: "bytes from network vs rsync literal data", value: rsyncLiteral / Math.max(teleportContent, 1) },
    {
      name: "bytes on wire vs rsync bytes received",
      value: wire(rsync.runs) / Math.max(wire(teleport.runs), 1),
    },
  ];
  const checks: Check[] = [
    {
      description:
        `bytes from the network <= rsync's literal data: ${(teleportContent / 1e6).toFixed(2)} MB ` +
        `against ${(rsyncLiteral / 1e6).toFixed(2)} MB`,
      met: teleportContent <= rsyncLiteral,
    },
    fasterThan(subject, rsyncFigure),
  ];
  return { status: "ok", figures, ratios, checks, notes };
}
