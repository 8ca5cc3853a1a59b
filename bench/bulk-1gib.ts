/**
 * bulk_1gib: cold pull of one 1 GiB random file over loopback, teleport side by side with the
 * peers it must beat (rsync daemon, scp, rsync over ssh) and a local dd as the page-cache limit.
 * Each tool gets one warm-up run, then N timed runs; every copy is checked byte for byte.
 *
 *   node dist/bench/bulk-1gib.js [--runs 3] [--out FILE] [--only teleport,rsync-daemon,...]
 *
 * Env: BENCH_DIR (default /tmp/teleport-bench) holds the payload, reused across invocations;
 * TELEPORT_REPO overrides the repo root (default: two levels above this compiled file).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  type CommandSpec,
  flushDirtyPages,
  maximum,
  measureCommand,
  median,
  minimum,
  startServerMeasurement,
  warmPageCache,
} from "./lib/measure.js";
import { assertIdenticalCopy, ensureRandomFile, type Payload } from "./lib/payload.js";
import {
  ensureDebianPackages,
  PEER_PACKAGES,
  startRsyncDaemon,
  startSshServer,
  type UnavailablePackages,
  whyUnavailable,
} from "./lib/peers.js";
import { makeTempDir, registerCleanup, type ServerProcess } from "./lib/processes.js";
import { findTeleportCli, parsePullReport, startTeleportHost, teleportPullCommand } from "./lib/teleport.js";

const PAYLOAD_BYTES = 1 << 30;

interface BenchContext {
  payload: Payload;
  unavailable: UnavailablePackages;
  repoRoot: string;
}

/** A tool whose server, if it has one, is running and ready for transfers. */
interface ReadyTool {
  /** The tool's server, measured through /proc and quoted when a transfer fails. */
  server: ServerProcess | null;
  details: Record<string, unknown>;
  /** The client command that copies the payload into `destDir`. */
  transferCommand(destDir: string): CommandSpec;
  /** Validates a run's stdout and returns what to keep from it. */
  readReport?(stdout: string): unknown;
  /** Stops the server; returns a warning if it did not stop cleanly. */
  stop(): Promise<string | null>;
}

type Preparation = { ready: ReadyTool } | { skipped: string };

interface ToolDefinition {
  name: string;
  /** subject: teleport; peer: what it is compared with; limit: the physical reference. */
  role: "subject" | "peer" | "limit";
  prepare(context: BenchContext): Promise<Preparation>;
}

const SSH_PACKAGES = ["openssh-server", "openssh-client"];

/** scp from a private sshd on loopback, with extra client options (a cipher, say). */
function scpTool(name: string, extraArgs: readonly string[]): ToolDefinition {
  return {
    name,
    role: "peer",
    prepare: async ({ unavailable, payload }) => {
      const reason = whyUnavailable(unavailable, SSH_PACKAGES);
      if (reason !== null) return { skipped: reason };
      const ssh = await startSshServer();
      return {
        ready: {
          server: ssh.server,
          details: {
            version: ssh.version,
            cipher: extraArgs.length > 0 ? extraArgs.join(" ") : ssh.negotiatedCipher,
          },
          transferCommand: (destDir) => ({
            command: "scp",
            args: [...ssh.scpArgs, ...extraArgs, ssh.remotePath(payload.path), `${destDir}/`],
          }),
          stop: async () => {
            await ssh.stop();
            return null;
          },
        },
      };
    },
  };
}

const TOOLS: readonly ToolDefinition[] = [
  {
    name: "teleport",
    role: "subject",
    prepare: async ({ repoRoot, payload }) => {
      const cli = findTeleportCli(repoRoot);
      if (cli === null) return { skipped: "not built" };
      const host = await startTeleportHost(cli, dirname(payload.path));
      const clientHomes = makeTempDir("teleport-client");
      return {
        ready: {
          server: host.server,
          details: { hostReadySeconds: host.readySeconds },
          transferCommand: (destDir) =>
            teleportPullCommand(cli, host.link, destDir, mkdtempSync(join(clientHomes.path, "run-"))),
          readReport: parsePullReport,
          stop: async () => {
            const exit = await host.stop();
            clientHomes.remove();
            return exit.code === 0
              ? null
              : `host did not exit 0 on SIGTERM: code ${exit.code}, ${exit.signal}`;
          },
        },
      };
    },
  },
  {
    name: "rsync-daemon",
    role: "peer",
    prepare: async ({ unavailable, payload }) => {
      const reason = whyUnavailable(unavailable, ["rsync"]);
      if (reason !== null) return { skipped: reason };
      const daemon = await startRsyncDaemon(dirname(payload.path));
      return {
        ready: {
          server: daemon.server,
          details: { version: daemon.version },
          transferCommand: (destDir) => ({
            command: "rsync",
            args: [`${daemon.moduleUrl}/${basename(payload.path)}`, `${destDir}/`],
          }),
          stop: async () => {
            await daemon.stop();
            return null;
          },
        },
      };
    },
  },
  // scp as installed (Debian negotiates chacha20-poly1305), and with the AES-128-GCM cipher
  // targets.md's reference figure uses.
  scpTool("scp", []),
  scpTool("scp-aes128gcm", ["-c", "aes128-gcm@openssh.com"]),
  {
    name: "rsync-ssh",
    role: "peer",
    prepare: async ({ unavailable, payload }) => {
      const reason = whyUnavailable(unavailable, ["rsync", ...SSH_PACKAGES]);
      if (reason !== null) return { skipped: reason };
      const ssh = await startSshServer();
      return {
        ready: {
          server: ssh.server,
          details: { cipher: ssh.negotiatedCipher },
          transferCommand: (destDir) => ({
            command: "rsync",
            args: ["-e", ssh.rsyncRemoteShell, ssh.remotePath(payload.path), `${destDir}/`],
          }),
          stop: async () => {
            await ssh.stop();
            return null;
          },
        },
      };
    },
  },
  {
    // Not a network transfer: what copying the bytes through the page cache costs at best.
    name: "local-dd",
    role: "limit",
    prepare: async ({ payload }) => ({
      ready: {
        server: null,
        details: {},
        transferCommand: (destDir) => ({
          command: "dd",
          args: [`if=${payload.path}`, `of=${join(destDir, basename(payload.path))}`, "bs=1M", "status=none"],
        }),
        stop: async () => null,
      },
    }),
  },
];

interface RunRecord {
  wallSeconds: number;
  clientCpuSeconds: number | null;
  clientPeakRssBytes: number | null;
  serverCpuSeconds: number | null;
  serverPeakRssBytes: number | null;
  report?: unknown;
}

interface ToolSummary {
  medianSeconds: number;
  minSeconds: number;
  maxSeconds: number;
  megabytesPerSecond: number;
  /** Teleport's speed over this tool's (>1: teleport is faster); null without a teleport result. */
  teleportSpeedRatio: number | null;
  clientCpuSeconds: number | null;
  clientPeakRssBytes: number | null;
  serverCpuSeconds: number | null;
  serverPeakRssBytes: number | null;
}

interface ToolResult {
  name: string;
  role: ToolDefinition["role"];
  status: "ok" | "skipped" | "failed";
  reason?: string;
  warnings: string[];
  details: Record<string, unknown>;
  warmup?: RunRecord;
  runs: RunRecord[];
  summary?: ToolSummary;
}

/** Warm-up then `runs` timed transfers; a failed or wrong copy ends the tool as "failed". */
interface Contender {
  result: ToolResult;
  ready: ReadyTool;
  destDir: string;
}

/** Starts a tool's server (if any); a tool that cannot run is returned as skipped or failed. */
async function prepareTool(
  tool: ToolDefinition,
  context: BenchContext,
  destRoot: string,
): Promise<ToolResult | Contender> {
  const result: ToolResult = {
    name: tool.name,
    role: tool.role,
    status: "ok",
    warnings: [],
    details: {},
    runs: [],
  };
  let preparation: Preparation;
  try {
    preparation = await tool.prepare(context);
  } catch (error) {
    return { ...result, status: "failed", reason: `setup: ${errorMessage(error)}` };
  }
  if ("skipped" in preparation) return { ...result, status: "skipped", reason: preparation.skipped };
  result.details = preparation.ready.details;
  return { result, ready: preparation.ready, destDir: join(destRoot, tool.name) };
}

/**
 * Runs every tool once per round, a warm-up round first, rotating the order each round: this
 * VM's memory and page cache drift over a run, and interleaving spreads the drift over all tools
 * instead of charging it to whichever ran last.
 */
async function runRounds(contenders: Contender[], payload: Payload, runs: number): Promise<void> {
  for (let round = 0; round <= runs; round++) {
    const shift = round % Math.max(contenders.length, 1);
    const order = [...contenders.slice(shift), ...contenders.slice(0, shift)];
    for (const { result, ready, destDir } of order) {
      if (result.status !== "ok") continue;
      try {
        const record = await timedTransfer(ready, payload, destDir);
        if (round === 0) {
          result.warmup = record;
          progress(`${result.name}: warm-up: ${record.wallSeconds.toFixed(3)} s`);
        } else {
          result.runs.push(record);
          progress(`${result.name}: run ${round}/${runs}: ${record.wallSeconds.toFixed(3)} s`);
        }
      } catch (error) {
        result.status = "failed";
        result.reason = errorMessage(error);
        progress(`${result.name}: failed: ${result.reason}`);
      }
    }
  }
}

async function stopTool({ result, ready, destDir }: Contender): Promise<void> {
  const warning = await ready.stop().catch((error: unknown) => `stop failed: ${errorMessage(error)}`);
  if (warning !== null) result.warnings.push(warning);
  rmSync(destDir, { recursive: true, force: true });
}

async function timedTransfer(tool: ReadyTool, payload: Payload, destDir: string): Promise<RunRecord> {
  rmSync(destDir, { recursive: true, force: true });
  mkdirSync(destDir, { recursive: true });
  await warmPageCache(payload.path);
  flushDirtyPages();

  const measurement = tool.server === null ? null : await startServerMeasurement(tool.server.pid);
  const client = await measureCommand(tool.transferCommand(destDir));
  const serverCost = measurement === null ? null : await measurement.finish();

  if (client.exitCode !== 0) {
    const status = client.signal ?? `code ${client.exitCode}`;
    const serverLog = tool.server === null ? "" : `\n  ${tool.server.name} log:\n${tool.server.logTail(10)}`;
    throw new Error(`transfer exited with ${status}: ${client.stderr.trim().slice(-500)}${serverLog}`);
  }
  const report = tool.readReport?.(client.stdout);
  await assertIdenticalCopy(join(destDir, basename(payload.path)), payload);
  return {
    wallSeconds: client.wallSeconds,
    clientCpuSeconds: client.cpuSeconds,
    clientPeakRssBytes: client.peakRssBytes,
    serverCpuSeconds: serverCost?.cpuSeconds ?? null,
    serverPeakRssBytes: serverCost?.peakRssBytes ?? null,
    ...(report === undefined ? {} : { report }),
  };
}

function summarize(result: ToolResult, payloadBytes: number, teleportMedian: number | null): ToolSummary {
  const seconds = result.runs.map((run) => run.wallSeconds);
  const medianSeconds = median(seconds);
  const present = (values: (number | null)[]) => values.filter((value): value is number => value !== null);
  const medianOf = (values: (number | null)[]) => (present(values).length ? median(present(values)) : null);
  const maxOf = (values: (number | null)[]) => (present(values).length ? maximum(present(values)) : null);
  return {
    medianSeconds,
    minSeconds: minimum(seconds),
    maxSeconds: maximum(seconds),
    megabytesPerSecond: payloadBytes / 1e6 / medianSeconds,
    teleportSpeedRatio:
      teleportMedian === null || result.role === "subject" ? null : medianSeconds / teleportMedian,
    clientCpuSeconds: medianOf(result.runs.map((run) => run.clientCpuSeconds)),
    clientPeakRssBytes: maxOf(result.runs.map((run) => run.clientPeakRssBytes)),
    serverCpuSeconds: medianOf(result.runs.map((run) => run.serverCpuSeconds)),
    serverPeakRssBytes: maxOf(result.runs.map((run) => run.serverPeakRssBytes)),
  };
}

function printTable(results: readonly ToolResult[]): void {
  const header = [
    "tool",
    "median s",
    "min-max s",
    "MB/s",
    "teleport x",
    "client CPU s",
    "client RSS MB",
    "server CPU s",
    "server RSS MB",
  ];
  const rows = [header];
  for (const result of results) {
    const summary = result.summary;
    if (result.status !== "ok" || summary === undefined) {
      const reason = result.reason ?? "";
      rows.push([
        result.status === "skipped"
          ? `${result.name}: ${reason}, skipped`
          : `${result.name}: FAILED: ${reason}`,
      ]);
      continue;
    }
    rows.push([
      result.name,
      summary.medianSeconds.toFixed(3),
      `${summary.minSeconds.toFixed(3)}-${summary.maxSeconds.toFixed(3)}`,
      summary.megabytesPerSecond.toFixed(0),
      summary.teleportSpeedRatio === null ? "-" : summary.teleportSpeedRatio.toFixed(2),
      formatOptional(summary.clientCpuSeconds, 2),
      formatOptional(summary.clientPeakRssBytes === null ? null : summary.clientPeakRssBytes / 1e6, 1),
      formatOptional(summary.serverCpuSeconds, 2),
      formatOptional(summary.serverPeakRssBytes === null ? null : summary.serverPeakRssBytes / 1e6, 1),
    ]);
  }
  const tabular = rows.filter((row) => row.length > 1);
  const widths = header.map((_, column) => Math.max(...tabular.map((row) => (row[column] ?? "").length)));
  for (const row of rows) {
    // A skip or failure reason is one cell spanning the row, not padded into columns.
    const cells = row.length === 1 ? row : row.map((cell, column) => cell.padEnd(widths[column] ?? 0));
    console.log(cells.join("  ").trimEnd());
  }
  console.log("teleport x = teleport speed / tool speed (> 1: teleport is faster); MB = 10^6 bytes");
  for (const result of results) {
    for (const warning of result.warnings) console.log(`warning: ${result.name}: ${warning}`);
  }
}

function formatOptional(value: number | null, digits: number): string {
  return value === null ? "-" : value.toFixed(digits);
}

function machineInfo(): Record<string, unknown> {
  const cores = cpus();
  return {
    cpuModel: cores[0]?.model ?? "unknown",
    cpuCount: cores.length,
    kernel: release(),
    nodeVersion: process.version,
    totalMemoryBytes: totalmem(),
    // Other work on a shared 2-core machine skews every figure; a high value flags such a run.
    loadAverage1m: loadavg()[0],
  };
}

function repoRevision(repoRoot: string): string | null {
  try {
    const head = execFileSync("git", ["-C", repoRoot, "rev-parse", "--short", "HEAD"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
    const dirty = execFileSync("git", ["-C", repoRoot, "status", "--porcelain", "--untracked-files=no"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    return dirty.trim() === "" ? head : `${head}-dirty`;
  } catch {
    return null; // not a git checkout, or no commit yet
  }
}

interface Options {
  runs: number;
  outPath: string;
  only: string[] | null;
  benchDir: string;
  repoRoot: string;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: { runs: { type: "string" }, out: { type: "string" }, only: { type: "string" } },
  });
  const runs = Number(values.runs ?? "3");
  if (!Number.isInteger(runs) || runs < 1)
    throw new Error(`--runs must be a positive integer, got ${values.runs}`);
  const only = values.only === undefined ? null : values.only.split(",").map((name) => name.trim());
  const unknown = (only ?? []).filter((name) => !TOOLS.some((tool) => tool.name === name));
  if (unknown.length > 0) {
    throw new Error(
      `--only: unknown tool ${unknown.join(", ")}; known: ${TOOLS.map((t) => t.name).join(", ")}`,
    );
  }
  const benchDir = process.env.BENCH_DIR ?? "/tmp/teleport-bench";
  return {
    runs,
    outPath: values.out ?? join(benchDir, "bulk-1gib.json"),
    only,
    benchDir,
    repoRoot: process.env.TELEPORT_REPO ?? fileURLToPath(new URL("../..", import.meta.url)),
  };
}

function progress(message: string): void {
  console.error(`bench: ${message}`);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function main(): Promise<void> {
  const options = parseOptions();
  const startedAt = new Date().toISOString();
  const machine = machineInfo(); // before the run, so the load average is other work's
  const unavailable = ensureDebianPackages(PEER_PACKAGES);
  // The share must hold the payload alone: teleport pulls the whole directory.
  progress(`preparing the 1 GiB payload in ${options.benchDir}`);
  const payload = await ensureRandomFile(join(options.benchDir, "share1g", "file.bin"), PAYLOAD_BYTES);
  const context: BenchContext = { payload, unavailable, repoRoot: options.repoRoot };
  const destRoot = join(options.benchDir, "dst");
  // Copies are a gigabyte each: removed even when the run is interrupted.
  const removeCopies = registerCleanup(() => rmSync(destRoot, { recursive: true, force: true }));

  const results: ToolResult[] = [];
  const contenders: Contender[] = [];
  for (const tool of TOOLS) {
    if (options.only !== null && !options.only.includes(tool.name)) continue;
    const prepared = await prepareTool(tool, context, destRoot);
    if ("ready" in prepared) {
      contenders.push(prepared);
      results.push(prepared.result);
    } else {
      progress(`${tool.name}: ${prepared.status}: ${prepared.reason ?? ""}`);
      results.push(prepared);
    }
  }
  try {
    await runRounds(contenders, payload, options.runs);
  } finally {
    for (const contender of contenders) await stopTool(contender);
    await removeCopies.run();
  }

  const teleport = results.find((result) => result.role === "subject" && result.status === "ok");
  const teleportMedian = teleport === undefined ? null : median(teleport.runs.map((run) => run.wallSeconds));
  for (const result of results) {
    if (result.status === "ok") result.summary = summarize(result, payload.bytes, teleportMedian);
  }
  printTable(results);

  const document = {
    benchmark: "bulk_1gib",
    startedAt,
    revision: repoRevision(options.repoRoot),
    machine,
    payload: { bytes: payload.bytes, sha256: payload.sha256 },
    runsPerTool: options.runs,
    tools: results,
  };
  mkdirSync(dirname(options.outPath), { recursive: true });
  writeFileSync(options.outPath, `${JSON.stringify(document, null, 2)}\n`);
  progress(`results written to ${options.outPath}`);
  if (results.some((result) => result.status === "failed")) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(`bench: ${errorMessage(error)}`);
  process.exitCode = 1;
});
