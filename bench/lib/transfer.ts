/**
 * Side-by-side transfers on loopback: teleport and its peers copy the same payload, each tool
 * once per round in rotating order, after a warm-up round. Every copy is checked against the
 * payload before its time counts.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  type CommandSpec,
  flushDirtyPages,
  measureCommand,
  startServerMeasurement,
  warmPageCache,
} from "./measure.js";
import { assertIdenticalCopy, type Payload } from "./payload.js";
import { startRsyncDaemon, startSshServer, whyUnavailable } from "./peers.js";
import { makeTempDir, type ServerProcess, treeScratchParent } from "./processes.js";
import { costOfRuns, figure } from "./stats.js";
import { parsePullReport, startTeleportHost, teleportPullCommand } from "./teleport.js";
import type { BenchContext, Figure, Ratio } from "./types.js";

/** A tool whose server, if it has one, is running and ready for transfers. */
interface ReadyTool {
  /** The tool's server, measured through /proc and quoted when a transfer fails. */
  server: ServerProcess | null;
  details: Record<string, unknown>;
  /** The client command that copies the payload into `destDir` (as `destDir/<name>`). */
  transferCommand(destDir: string): CommandSpec;
  /** Validates a run's stdout and returns what to keep from it. */
  readReport?(stdout: string): unknown;
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
      const host = await startTeleportHost(cli, payload.root, undefined, options.hostArgs);
      const clientHomes = makeTempDir("teleport-client");
      return {
        server: host.server,
        details: { hostReadySeconds: host.readySeconds },
        transferCommand: (destDir) => {
          // A fresh TELEPORT_HOME per run: a cold pull, never a re-pull.
          const spec = teleportPullCommand(
            cli,
            host.link,
            destDir,
            mkdtempSync(join(clientHomes.path, "run-")),
          );
          return { ...spec, args: [...spec.args, "--path", payload.name, ...(options.pullArgs ?? [])] };
        },
        readReport: parsePullReport,
        stop: async () => {
          const exit = await host.stop();
          clientHomes.remove();
          return exit.code === 0 ? null : `host did not exit 0 on SIGTERM: code ${exit.code}, ${exit.signal}`;
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
  return {
    name,
    role: "peer",
    packages: SSH_PACKAGES,
    prepare: async (_context, payload) => {
      const ssh = await startSshServer();
      return {
        server: ssh.server,
        details: {
          version: ssh.version,
          cipher: extraArgs.length > 0 ? extraArgs.join(" ") : ssh.negotiatedCipher,
        },
        transferCommand: (destDir) => ({
          command: "scp",
          args: [...ssh.scpArgs, "-r", "-p", ...extraArgs, ssh.remotePath(payload.path), `${destDir}/`],
        }),
        stop: async () => {
          await ssh.stop();
          return null;
        },
      };
    },
  };
}

export const rsyncSshTool: TransferTool = {
  name: "rsync-ssh",
  role: "peer",
  packages: ["rsync", ...SSH_PACKAGES],
  prepare: async (_context, payload) => {
    const ssh = await startSshServer();
    return {
      server: ssh.server,
      details: { cipher: ssh.negotiatedCipher },
      transferCommand: (destDir) => ({
        command: "rsync",
        args: ["-a", "-e", ssh.rsyncRemoteShell, ssh.remotePath(payload.path), `${destDir}/`],
      }),
      stop: async () => {
        await ssh.stop();
        return null;
      },
    };
  },
};

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

interface RunRecord {
  wallSeconds: number;
  clientCpuSeconds: number | null;
  clientPeakRssBytes: number | null;
  serverCpuSeconds: number | null;
  serverPeakRssBytes: number | null;
  /** What the copy takes on disk (`du`), for a single file: less than its size where sparse. */
  allocatedBytes: number | null;
  report?: unknown;
}

interface Contender {
  tool: TransferTool;
  ready: ReadyTool;
  destDir: string;
  runs: RunRecord[];
  failure?: string;
  warnings: string[];
}

export interface Comparison {
  figures: Figure[];
  ratios: Ratio[];
  /** Tools that were skipped or failed, with why. */
  notes: string[];
  /** The subject's pull reports (teleport --json), one per timed run. */
  reports: unknown[];
  /** Every tool's reports, by tool name (tools without `readReport` have none). */
  reportsByTool: Map<string, unknown[]>;
}

/**
 * Runs every tool that can run here once per round, a warm-up round first, rotating the order
 * each round: this VM's memory and page cache drift over a run, and interleaving spreads the
 * drift over all tools instead of charging it to whichever ran last.
 */
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
        contenders.push({ tool, ready, destDir: join(scratch.path, tool.name), runs: [], warnings: [] });
      } catch (error) {
        notes.push(`${tool.name}: failed to start: ${errorMessage(error)}`);
      }
    }
    for (let round = 0; round <= context.runs; round++) {
      const shift = round % Math.max(contenders.length, 1);
      for (const contender of [...contenders.slice(shift), ...contenders.slice(0, shift)]) {
        if (contender.failure !== undefined) continue;
        try {
          const record = await timedTransfer(contender, payload);
          const label = round === 0 ? "warm-up" : `run ${round}/${context.runs}`;
          context.log(`${contender.tool.name}: ${label}: ${record.wallSeconds.toFixed(3)} s`);
          if (round > 0) contender.runs.push(record);
        } catch (error) {
          contender.failure = errorMessage(error);
          context.log(`${contender.tool.name}: failed: ${contender.failure}`);
        }
      }
    }
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

async function timedTransfer(contender: Contender, payload: Payload): Promise<RunRecord> {
  const { ready, destDir } = contender;
  rmSync(destDir, { recursive: true, force: true });
  mkdirSync(destDir, { recursive: true });
  if (payload.files === 1) await warmPageCache(payload.path);
  flushDirtyPages();

  const measurement = ready.server === null ? null : await startServerMeasurement(ready.server.pid);
  const client = await measureCommand(ready.transferCommand(destDir));
  const serverCost = measurement === null ? null : await measurement.finish();
  if (client.exitCode !== 0) {
    const status = client.signal ?? `code ${client.exitCode}`;
    const serverLog =
      ready.server === null ? "" : `\n  ${ready.server.name} log:\n${ready.server.logTail(10)}`;
    throw new Error(`transfer exited with ${status}: ${client.stderr.trim().slice(-500)}${serverLog}`);
  }
  const report = ready.readReport?.(client.stdout);
  await assertIdenticalCopy(join(destDir, payload.name), payload);
  const allocatedBytes = payload.files === 1 ? statSync(join(destDir, payload.name)).blocks * 512 : null;
  return {
    allocatedBytes,
    wallSeconds: client.wallSeconds,
    clientCpuSeconds: client.cpuSeconds,
    clientPeakRssBytes: client.peakRssBytes,
    serverCpuSeconds: serverCost?.cpuSeconds ?? null,
    serverPeakRssBytes: serverCost?.peakRssBytes ?? null,
    ...(report === undefined ? {} : { report }),
  };
}

function summarize(payload: Payload, contenders: readonly Contender[], notes: string[]): Comparison {
  const figures: Figure[] = [];
  for (const { tool, ready, runs, failure, warnings } of contenders) {
    for (const warning of warnings) notes.push(`${tool.name}: ${warning}`);
    if (failure !== undefined) notes.push(`${tool.name}: failed: ${failure}`);
    if (failure !== undefined || runs.length === 0) continue;
    const seconds = runs.map((run) => run.wallSeconds);
    const result = figure(
      {
        tool: tool.name,
        role: tool.role,
        metric: "seconds",
        better: "lower",
        ...costOfRuns(runs),
      },
      seconds,
    );
    result.megabytesPerSecond = payload.bytes / 1e6 / result.median;
    const allocated = runs.flatMap((run) => run.allocatedBytes ?? []);
    result.details = {
      ...ready.details,
      filesPerSecond: payload.files / result.median,
      ...(allocated.length === 0 ? {} : { allocatedBytes: Math.max(...allocated) }),
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
