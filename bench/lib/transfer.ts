/**
 * Side-by-side transfers on loopback: teleport and its peers copy the same payload, each tool
 * once per round in rotating order, after a warm-up round. Every copy is checked against the
 * payload before its time counts.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  type CommandSpec,
  type CommandUsage,
  flushDirtyPages,
  measureCommand,
  startServerMeasurement,
  warmPageCache,
} from "./measure.js";
import { assertIdenticalCopy, type Payload } from "./payload.js";
import { type SshServer, startRsyncDaemon, startSshServer, whyUnavailable } from "./peers.js";
import { makeTempDir, type ServerProcess, treeScratchParent } from "./processes.js";
import { parseRsyncStats } from "./rsync-stats.js";
import { medianOfKnown, type RunCost, runsFigure } from "./stats.js";
import {
  type PullReport,
  parsePullReport,
  startTeleportHost,
  teleportPullCommand,
  uncleanExit,
} from "./teleport.js";
import type { BenchContext, Figure, Ratio } from "./types.js";

/** A tool whose server, if it has one, is running and ready for transfers. */
interface ReadyTool {
  /** The tool's server, measured through /proc and quoted when a transfer fails. */
  server: ServerProcess | null;
  details: Record<string, unknown>;
  /** The client command that copies the payload into `destDir` (as `destDir/<name>`). */
  transferCommand(destDir: string): CommandSpec;
  /** Validates a teleport run's stdout and returns its summary. */
  readReport?(stdout: string): PullReport;
  /** What the run moved over the network, from its output, where the tool says (else null). */
  readWireBytes?(stdout: string): number | null;
  stop(): Promise<string | null>;
}

export interface TransferTool {
  name: string;
  /** subject: teleport; peer: what it is compared with; limit: the physical reference. */
  role: Figure["role"];
  /** Debian packages the tool needs. */
  packages: readonly string[];
  prepare(context: BenchContext, payload: Payload): Promise<ReadyTool>;
}

export const SSH_PACKAGES = ["openssh-server", "openssh-client"] as const;

export interface TeleportToolOptions {
  name?: string;
  /** Default subject: the tool the others are compared with. */
  role?: Figure["role"];
  hostArgs?: readonly string[];
  pullArgs?: readonly string[];
}

export function teleportTool(options: TeleportToolOptions = {}): TransferTool {
  return {
    name: options.name ?? "teleport",
    role: options.role ?? "subject",
    packages: [],
    prepare: async ({ cli }, payload) => {
      const host = await startTeleportHost(cli, payload.root, { hostArgs: options.hostArgs ?? [] });
      const clientHomes = makeTempDir("teleport-client");
      return {
        server: host.server,
        details: { hostReadySeconds: host.readySeconds },
        // A fresh TELEPORT_HOME per run: a cold pull, never a re-pull.
        transferCommand: (destDir) =>
          teleportPullCommand(cli, host.link, destDir, mkdtempSync(join(clientHomes.path, "run-")), [
            "--path",
            payload.name,
            ...(options.pullArgs ?? []),
          ]),
        readReport: parsePullReport,
        readWireBytes: (stdout) => parsePullReport(stdout).bytesOnWire,
        stop: async () => {
          const exit = await host.stop();
          clientHomes.remove();
          return uncleanExit(exit);
        },
      };
    },
  };
}

export const rsyncDaemonTool: TransferTool = rsyncDaemonWith("rsync-daemon", []);

/** The rsync daemon, pulled from with extra client options (`-S` for sparse files, say). */
export function rsyncDaemonWith(name: string, extraArgs: readonly string[]): TransferTool {
  return {
    name,
    role: "peer",
    packages: ["rsync"],
    prepare: async (_context, payload) => {
      const daemon = await startRsyncDaemon(payload.root);
      return {
        server: daemon.server,
        details: { version: daemon.version, transport: "plaintext, unverified" },
        transferCommand: (destDir) => ({
          command: "rsync",
          args: ["-a", ...extraArgs, `${daemon.moduleUrl}/${payload.name}`, `${destDir}/`],
        }),
        readWireBytes: rsyncWireBytes,
        stop: async () => {
          await daemon.stop();
          return null;
        },
      };
    },
  };
}

/** scp from a private sshd on loopback, with extra client options (a cipher, say). */
export function scpTool(name: string, extraArgs: readonly string[]): TransferTool {
  return sshTool(name, SSH_PACKAGES, {
    details: (ssh) => ({
      version: ssh.version,
      cipher: extraArgs.length > 0 ? extraArgs.join(" ") : ssh.negotiatedCipher,
    }),
    command: (ssh, payload, destDir) => ({
      command: "scp",
      args: [...ssh.scpArgs, "-r", "-p", ...extraArgs, ssh.remotePath(payload.path), `${destDir}/`],
    }),
  });
}

export const rsyncSshTool: TransferTool = rsyncSshWith("rsync-ssh", []);

/** rsync over ssh from a private sshd on loopback, with extra client options. */
export function rsyncSshWith(name: string, extraArgs: readonly string[]): TransferTool {
  return sshTool(name, ["rsync", ...SSH_PACKAGES], {
    details: (ssh) => ({ cipher: ssh.negotiatedCipher }),
    command: (ssh, payload, destDir) => ({
      command: "rsync",
      args: ["-a", ...extraArgs, "-e", ssh.rsyncRemoteShell, ssh.remotePath(payload.path), `${destDir}/`],
    }),
    readWireBytes: rsyncWireBytes,
  });
}

/** What an rsync client received, where it was run with `--stats`. */
function rsyncWireBytes(stdout: string): number | null {
  return stdout.includes("Total bytes received:") ? parseRsyncStats(stdout).bytesReceived : null;
}

/** How a peer pulls over ssh, given the server. */
interface SshClient {
  details(ssh: SshServer): Record<string, unknown>;
  command(ssh: SshServer, payload: Payload, destDir: string): CommandSpec;
  readWireBytes?(stdout: string): number | null;
}

/** A peer pulling from a private sshd on loopback. */
function sshTool(name: string, packages: readonly string[], client: SshClient): TransferTool {
  return {
    name,
    role: "peer",
    packages,
    prepare: async (_context, payload) => {
      const ssh = await startSshServer();
      return {
        server: ssh.server,
        details: client.details(ssh),
        transferCommand: (destDir) => client.command(ssh, payload, destDir),
        ...(client.readWireBytes === undefined ? {} : { readWireBytes: client.readWireBytes }),
        stop: async () => {
          await ssh.stop();
          return null;
        },
      };
    },
  };
}

/** Not a network transfer: what copying the bytes through the page cache costs at best. */
export const localCopyTool: TransferTool = {
  name: "cp",
  role: "limit",
  packages: [],
  prepare: async (_context, payload) => ({
    server: null,
    details: {},
    transferCommand: (destDir) => ({ command: "cp", args: ["-a", payload.path, `${destDir}/`] }),
    stop: async () => null,
  }),
};

/**
 * The usual line-up: teleport, the rsync daemon, scp (two ciphers), rsync over ssh, cp. Quick
 * mode keeps teleport, the rsync daemon, scp and cp: the peers the targets name.
 */
export function standardTools(quick: boolean): TransferTool[] {
  // scp as installed (Debian negotiates chacha20-poly1305), and with the AES-128-GCM cipher
  // that targets.md's reference figure uses.
  const scp = scpTool("scp", []);
  if (quick) return [teleportTool(), rsyncDaemonTool, scp, localCopyTool];
  return [
    teleportTool(),
    rsyncDaemonTool,
    scp,
    scpTool("scp-aes128gcm", ["-c", "aes128-gcm@openssh.com"]),
    rsyncSshTool,
    localCopyTool,
  ];
}

interface RunRecord extends RunCost {
  wallSeconds: number;
  /** What the copy takes on disk (`du`), for a single file: less than its size where sparse. */
  allocatedBytes: number | null;
  /** What crossed the network, where the tool reports it. */
  wireBytes: number | null;
  report?: PullReport;
}

interface Contender extends RoundEntry {
  tool: TransferTool;
  ready: ReadyTool;
  destDir: string;
  runs: RunRecord[];
  warnings: string[];
}

export interface Comparison {
  figures: Figure[];
  ratios: Ratio[];
  /** Tools that were skipped or failed, with why. */
  notes: string[];
  /** The subject's pull reports (teleport --json), one per timed run. */
  reports: (PullReport | undefined)[];
  /** Every tool's reports, by tool name (tools without `readReport` have none). */
  reportsByTool: Map<string, (PullReport | undefined)[]>;
}

/** Runs every tool that can run here in rotating rounds (runRounds), then sums them up. */
export async function compareTransfers(
  context: BenchContext,
  payload: Payload,
  tools: readonly TransferTool[],
): Promise<Comparison> {
  const notes: string[] = [];
  const scratch = makeTempDir("dest", payload.files > 1 ? treeScratchParent(payload.bytes) : undefined);
  const contenders: Contender[] = [];
  try {
    for (const tool of tools) {
      const missing = whyUnavailable(context.unavailable, tool.packages);
      if (missing !== null) {
        notes.push(`${tool.name}: skipped: ${missing}`);
        continue;
      }
      try {
        const ready = await tool.prepare(context, payload);
        const destDir = join(scratch.path, tool.name);
        contenders.push({ name: tool.name, failure: null, tool, ready, destDir, runs: [], warnings: [] });
      } catch (error) {
        notes.push(`${tool.name}: failed to start: ${errorMessage(error)}`);
      }
    }
    await runRounds(context, contenders, async (contender, round, label) => {
      const record = await timedTransfer(contender, payload);
      context.log(`${label}: ${record.wallSeconds.toFixed(3)} s`);
      if (round > 0) contender.runs.push(record);
    });
  } finally {
    for (const contender of contenders) {
      const warning = await contender.ready
        .stop()
        .catch((error: unknown) => `stop failed: ${errorMessage(error)}`);
      if (warning !== null) contender.warnings.push(warning);
    }
    scratch.remove();
  }
  return summarize(payload, contenders, notes);
}

/** What every side-by-side run tracks per tool: whether it failed, and then it runs no more. */
export interface RoundEntry {
  readonly name: string;
  failure: string | null;
}

/**
 * A warm-up round (round 0), then `context.runs` rounds, each entry once per round, the order
 * rotating each round: the machine's memory and page cache drift over a run, and interleaving
 * spreads the drift over all tools instead of charging it to whichever ran last. An entry whose
 * run throws is marked failed and skipped from then on.
 */
export async function runRounds<Entry extends RoundEntry>(
  context: BenchContext,
  entries: readonly Entry[],
  runOne: (entry: Entry, round: number, label: string) => Promise<void>,
  logPrefix = "",
): Promise<void> {
  for (let round = 0; round <= context.runs; round++) {
    const shift = round % Math.max(entries.length, 1);
    for (const entry of [...entries.slice(shift), ...entries.slice(0, shift)]) {
      if (entry.failure !== null) continue;
      const label = `${logPrefix}${entry.name}: ${round === 0 ? "warm-up" : `run ${round}/${context.runs}`}`;
      try {
        await runOne(entry, round, label);
      } catch (error) {
        entry.failure = errorMessage(error);
        context.log(`${label}: failed: ${entry.failure}`);
      }
    }
  }
}

/** One run into a fresh `destDir`, removed afterwards: copies of a large tree would pile up in tmpfs. */
async function timedTransfer(contender: Contender, payload: Payload): Promise<RunRecord> {
  const { ready, destDir } = contender;
  rmSync(destDir, { recursive: true, force: true });
  mkdirSync(destDir, { recursive: true });
  const copyPath = join(destDir, payload.name);
  try {
    const { client, ...cost } = await measuredCopy(
      ready.transferCommand(destDir),
      ready.server,
      payload,
      copyPath,
    );
    const report = ready.readReport?.(client.stdout);
    const allocatedBytes = payload.files === 1 ? statSync(copyPath).blocks * 512 : null;
    const wireBytes = ready.readWireBytes?.(client.stdout) ?? null;
    return { ...cost, allocatedBytes, wireBytes, ...(report === undefined ? {} : { report }) };
  } finally {
    rmSync(destDir, { recursive: true, force: true });
  }
}

/** One copy's time and cost, and the client's output. */
export interface MeasuredCopy extends RunCost {
  wallSeconds: number;
  client: CommandUsage;
}

/**
 * One measured copy: the payload's pages warm, the last copy's written back, the server's cost
 * bracketed around the client command, and the copy at `copyPath` checked against the payload
 * before its time counts (by `check`). `capSeconds`: the command is wrapped in `timeout` (exit 124 = hung).
 */
export async function measuredCopy(
  command: CommandSpec,
  server: ServerProcess | null,
  payload: Payload,
  copyPath: string,
  capSeconds?: number,
  check: (copyPath: string, payload: Payload) => Promise<void> = assertIdenticalCopy,
): Promise<MeasuredCopy> {
  if (payload.files === 1) await warmPageCache(payload.path);
  flushDirtyPages();
  const measurement = server === null ? null : await startServerMeasurement(server.pid);
  const client = await measureCommand(command);
  const serverCost = measurement === null ? null : await measurement.finish();
  if (client.exitCode !== 0) throw commandFailure(client, server, capSeconds);
  await check(copyPath, payload);
  return {
    wallSeconds: client.wallSeconds,
    client,
    clientCpuSeconds: client.cpuSeconds,
    clientPeakRssBytes: client.peakRssBytes,
    serverCpuSeconds: serverCost?.cpuSeconds ?? null,
    serverPeakRssBytes: serverCost?.peakRssBytes ?? null,
  };
}

/** A failed client command, with its stderr and the server's last log lines. */
export function commandFailure(
  usage: CommandUsage,
  server: ServerProcess | null,
  capSeconds?: number,
): Error {
  const status =
    capSeconds !== undefined && usage.exitCode === 124
      ? `still running after ${capSeconds} s`
      : `exited with ${usage.signal ?? `code ${usage.exitCode}`}`;
  const serverLog = server === null ? "" : `\n  ${server.name} log:\n${server.logTail(10)}`;
  return new Error(`${status}: ${usage.stderr.trim().slice(-500)}${serverLog}`);
}

function summarize(payload: Payload, contenders: readonly Contender[], notes: string[]): Comparison {
  const figures: Figure[] = [];
  for (const { tool, ready, runs, failure, warnings } of contenders) {
    for (const warning of warnings) notes.push(`${tool.name}: ${warning}`);
    if (failure !== null) notes.push(`${tool.name}: failed: ${failure}`);
    if (failure !== null || runs.length === 0) continue;
    const seconds = runs.map((run) => run.wallSeconds);
    const result = runsFigure(
      { tool: tool.name, role: tool.role, metric: "seconds", better: "lower" },
      runs,
      seconds,
    );
    result.megabytesPerSecond = payload.bytes / 1e6 / result.median;
    const allocated = runs.flatMap((run) => run.allocatedBytes ?? []);
    const wireBytes = medianOfKnown(runs.map((run) => run.wireBytes));
    result.details = {
      ...ready.details,
      filesPerSecond: payload.files / result.median,
      ...(allocated.length === 0 ? {} : { allocatedBytes: Math.max(...allocated) }),
      ...(wireBytes === null ? {} : { wireBytes }),
    };
    figures.push(result);
  }
  const subject = figures.find((candidate) => candidate.role === "subject");
  const ratios: Ratio[] =
    subject === undefined
      ? []
      : figures
          .filter((other) => other !== subject)
          .map((other) => ({ name: `speed vs ${other.tool}`, value: other.median / subject.median }));
  const subjectRuns = contenders.find((contender) => contender.tool.role === "subject")?.runs ?? [];
  const reportsByTool = new Map(
    contenders.map((contender) => [contender.tool.name, contender.runs.map((run) => run.report)]),
  );
  return { figures, ratios, notes, reports: subjectRuns.map((run) => run.report), reportsByTool };
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
