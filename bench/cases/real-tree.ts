/**
 * A real public tree nobody here wrote: the Linux source Debian ships in `linux-source-6.1`
 * (~78,600 files, 1.3 GB, mostly files under 16 KiB), two releases of it. Cold pulls beside the
 * rsync daemon, rsync over ssh and rsync -z; the next release pulled into a copy of the old one,
 * bytes against rsync's literal data; and with `--compress auto` over netsim 100 Mbit/s against
 * rsync -z. Quick mode pulls the HTML manual of `postgresql-doc-15` (1,173 files, 16 MB; two
 * releases again) once, without netsim.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import {
  type DebianTree,
  type DebianTreeSpec,
  ensureDebianTree,
  type ReleasePair,
} from "../lib/debian-tree.js";
import type { CommandSpec } from "../lib/measure.js";
import { describeLink, type LinkSettings, whyNoNetsim } from "../lib/netsim.js";
import { assertCopyHolds, ensureBuiltTree, type Payload } from "../lib/payload.js";
import { startRsyncDaemon } from "../lib/peers.js";
import { makeTempDir, type ServerProcess, treeScratchParent } from "../lib/processes.js";
import { parseRsyncStats } from "../lib/rsync-stats.js";
import { medianOfKnown, type RunCost, runsFigure } from "../lib/stats.js";
import { parsePullReport, startTeleportHost, teleportPullCommand, uncleanExit } from "../lib/teleport.js";
import {
  compareTransfers,
  errorMessage,
  measuredCopy,
  type RoundEntry,
  rsyncDaemonWith,
  rsyncSshWith,
  runRounds,
  teleportTool,
} from "../lib/transfer.js";
import type { BenchContext, Benchmark, BenchOutcome, Check, Figure, Ratio } from "../lib/types.js";
import { fixedContender } from "./wan/contender.js";
import { type LinkRun, onLink, requireFigures, WAN_PACKAGES } from "./wan/on-link.js";
import { pullWithRsync, pullWithTeleport } from "./wan/session.js";

/** Releases of bookworm's security updates; $BENCH_REAL_TREE_VERSIONS=OLD,NEXT picks others. */
const LINUX_SOURCE: DebianTreeSpec = {
  package: "linux-source-6.1",
  versions: versionsFromEnv() ?? { old: "6.1.190-1", next: "6.1.192-3" },
  source: { tarball: "usr/src/linux-source-6.1.tar.xz", folder: "linux-source-6.1" },
  name: "linux-source-6.1",
  approximateBytes: 1.4e9,
};

/** Quick mode's tree: small enough to fetch, unpack and pull in seconds. */
const POSTGRESQL_MANUAL: DebianTreeSpec = {
  package: "postgresql-doc-15",
  versions: { old: "15.18-0+deb12u1", next: "15.20-0+deb12u1" },
  source: { folder: "usr/share/doc/postgresql-doc-15/html" },
  name: "postgresql-doc-15",
  approximateBytes: 20e6,
};

/** The text part of the Linux tree the WAN run moves: ~250 MB, ~29,000 files, a minute a tool. */
const WAN_FOLDERS = ["arch", "fs", "include", "net", "sound"] as const;
const HUNDRED_MBIT_50MS: LinkSettings = { rateMbit: 100, delayMs: 25, loss: 0 };
const CLIENT_RSS_LIMIT = 150e6;

function versionsFromEnv(): ReleasePair | null {
  const [old, next] = (process.env.BENCH_REAL_TREE_VERSIONS ?? "").split(",");
  return old && next ? { old, next } : null;
}

const trees = new Map<string, Promise<DebianTree | { unavailable: string }>>();

/** Both releases of the tree for this mode, fetched and unpacked once per process. */
function realTree(context: BenchContext): Promise<DebianTree | { unavailable: string }> {
  const spec = context.quick ? POSTGRESQL_MANUAL : LINUX_SOURCE;
  let tree = trees.get(spec.package);
  if (tree === undefined) {
    tree = ensureDebianTree(spec, context.workDir, context.log);
    trees.set(spec.package, tree);
  }
  return tree;
}

/** Quick mode proves the case runs: one timed run after the warm-up. */
function runsFor(context: BenchContext): BenchContext {
  return context.quick ? { ...context, runs: 1 } : context;
}

function describeTree(tree: DebianTree, release: "old" | "next"): string {
  const payload = tree[release];
  return `${tree.spec.package} ${tree.versions[release]}: ${payload.files} files, ${(payload.bytes / 1e6).toFixed(0)} MB`;
}

export const realTreeCold: Benchmark = {
  name: "real_tree_cold",
  title: "cold pull of a real tree, linux-source-6.1 (78,600 files, 1.3 GB; quick: postgresql-doc-15)",
  target: ">= the rsync daemon's speed, >= 1.5x rsync over ssh, client RSS < 150 MB",
  quick: true,
  packages: ["rsync", "openssh-server", "openssh-client"],
  run: async (context) => {
    const tree = await realTree(context);
    if ("unavailable" in tree) return { status: "skipped", reason: tree.unavailable };
    const tools = [
      teleportTool(),
      rsyncDaemonWith("rsync-daemon", ["--stats"]),
      rsyncSshWith("rsync-ssh", ["--stats"]),
      rsyncDaemonWith("rsync-daemon -z", ["-z", "--stats"]),
    ];
    const comparison = await compareTransfers(runsFor(context), tree.next, tools);
    const byTool = new Map(comparison.figures.map((entry) => [entry.tool, entry]));
    const teleport = byTool.get("teleport");
    if (teleport === undefined)
      return { status: "failed", reason: comparison.notes.join("; ") || "teleport produced no figure" };
    const rsync = byTool.get("rsync-daemon");
    const ratios = [...comparison.ratios];
    if (rsync?.clientCpuSeconds && teleport.clientCpuSeconds)
      ratios.push({
        name: "client CPU vs rsync-daemon",
        value: rsync.clientCpuSeconds / teleport.clientCpuSeconds,
      });
    return {
      status: "ok",
      figures: comparison.figures,
      ratios,
      checks: [
        fasterThan(teleport, rsync),
        fasterThan(teleport, byTool.get("rsync-ssh"), 1.5),
        clientRssCheck(teleport),
      ],
      notes: [
        describeTree(tree, "next"),
        wireBytesNote(comparison.figures),
        ...tree.notes,
        ...comparison.notes,
      ],
      details: {
        tree: tree.spec.package,
        version: tree.versions.next,
        files: tree.next.files,
        bytes: tree.next.bytes,
      },
    };
  },
};

/** Bytes on the wire per tool: teleport's bytesOnWire (chunk data), rsync's total bytes received. */
function wireBytesNote(figures: readonly Figure[]): string {
  const perTool = figures.map((entry) => {
    const bytes = entry.details?.wireBytes;
    return `${entry.tool} ${typeof bytes === "number" ? `${(bytes / 1e6).toFixed(1)} MB` : "not reported"}`;
  });
  return `bytes on the wire (medians): ${perTool.join(", ")}`;
}

function fasterThan(teleport: Figure, peer: Figure | undefined, factor = 1): Check {
  const label = factor === 1 ? "at least as fast as" : `>= ${factor}x as fast as`;
  if (peer === undefined) return { description: `${label} a peer that did not run`, met: false };
  const ratio = peer.median / teleport.median;
  return { description: `${label} ${peer.tool}: ${ratio.toFixed(2)}x`, met: ratio >= factor };
}

function clientRssCheck(teleport: Figure): Check {
  const rss = teleport.clientPeakRssBytes ?? null;
  if (rss === null) return { description: "client peak RSS < 150 MB: not measured", met: false };
  return {
    description: `client peak RSS < 150 MB: ${(rss / 1e6).toFixed(0)} MB`,
    met: rss < CLIENT_RSS_LIMIT,
  };
}

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

/** `folders` of the next release, copied into a tree of their own (kept as the releases are). */
function textPart(tree: DebianTree, folders: readonly string[]): Promise<Payload> {
  const root = `${tree.next.root}-part`;
  return ensureBuiltTree(
    root,
    tree.next.name,
    JSON.stringify({ folders, digest: tree.next.digest }),
    (path) => {
      mkdirSync(path, { recursive: true });
      const copy = spawnSync("cp", ["-a", ...folders.map((folder) => join(tree.next.path, folder)), path], {
        encoding: "utf8",
      });
      if (copy.status !== 0) throw new Error(`copying part of ${tree.next.path}: ${copy.stderr}`);
    },
  );
}

const AUTO = "teleport --compress auto";
const RSYNC_Z = "rsync-daemon -z";

export const compressRealTreeWan: Benchmark = {
  name: "compress_real_tree_wan",
  title: `${WAN_FOLDERS.join(", ")} of linux-source-6.1 (~250 MB of text), ${describeLink(HUNDRED_MBIT_50MS)}`,
  target: "--compress auto >= rsync -z's payload rate",
  quick: false,
  packages: WAN_PACKAGES,
  run: async (context) => {
    // Before fetching gigabytes of tree for nothing.
    const noNetsim = whyNoNetsim(context.repoRoot);
    if (noNetsim !== null) return { status: "skipped", reason: noNetsim };
    const tree = await realTree(context);
    if ("unavailable" in tree) return { status: "skipped", reason: tree.unavailable };
    // Quick mode's tree is small already (and has no such folders).
    const part = context.quick ? tree.next : await textPart(tree, WAN_FOLDERS);
    const shared = { name: part.name, payload: part };
    const outcome = await onLink("compress_real_tree_wan", HUNDRED_MBIT_50MS, context, {
      sharedDir: part.root,
      contenders: (session) => {
        const contenders = [
          fixedContender(AUTO, "subject", () => pullWithTeleport(session, shared, ["--compress", "auto"])),
        ];
        const daemon = session.rsyncDaemon;
        if (daemon !== null)
          contenders.push(
            fixedContender(RSYNC_Z, "peer", () => pullWithRsync(session, daemon, shared, ["-z", "--stats"])),
          );
        return contenders;
      },
      report: compressOutcome,
    });
    if (outcome.status !== "ok") return outcome;
    const partNote = `${part.files} files, ${(part.bytes / 1e6).toFixed(0)} MB of ${tree.spec.package} ${tree.versions.next}`;
    return { ...outcome, notes: [partNote, ...tree.notes, ...(outcome.notes ?? [])] };
  },
};

function compressOutcome(run: LinkRun): BenchOutcome {
  const required = requireFigures(run, [AUTO]);
  if ("failed" in required) return required.failed;
  const [auto] = required.figures;
  const rsync = run.byTool.get(RSYNC_Z);
  if (rsync === undefined)
    return { status: "ok", figures: run.figures, ratios: [], checks: [], notes: ["rsync -z has no figure"] };
  const ratio = auto.median / rsync.median;
  return {
    status: "ok",
    figures: run.figures,
    // Figures are Mbit/s of tree bytes over wall time: the payload rate.
    ratios: [{ name: "payload rate vs rsync -z", value: ratio }],
    checks: [
      {
        description:
          `payload rate >= rsync -z's: ${auto.median.toFixed(0)} against ${rsync.median.toFixed(0)} Mbit/s ` +
          `(${ratio.toFixed(2)}x)`,
        met: ratio >= 1,
      },
    ],
  };
}

export const realTreeBenchmarks: Benchmark[] = [realTreeCold, realTreeNext, compressRealTreeWan];
