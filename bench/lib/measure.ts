/**
 * What a benchmark run costs: wall seconds, CPU seconds (user + sys) and peak RSS, for the
 * client command (through GNU time, which sees every process the command waited for) and for
 * a long-lived server (through /proc, since it never exits between runs).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { processTree, readPeakRssBytes, ticksPerSecond } from "./proc.js";
import { makeTempDir, registerCleanup, signalProcessTree } from "./processes.js";

export interface CommandSpec {
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface CommandUsage {
  wallSeconds: number;
  /** User + sys of the command and all descendants it waited for; null without GNU time. */
  cpuSeconds: number | null;
  /** Largest RSS of any one process of the command; null without GNU time. */
  peakRssBytes: number | null;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const GNU_TIME = "/usr/bin/time";
let usageDir: string | undefined;
let usageFileCounter = 0;

/**
 * Runs a command to completion and measures it. Never throws for a non-zero exit. The command
 * gets its own process group, so an interrupted benchmark can end it and whatever it spawned
 * (scp's ssh, rsync's receiver) instead of leaving a transfer running.
 */
export async function measureCommand(spec: CommandSpec): Promise<CommandUsage> {
  usageDir ??= makeTempDir("usage").path;
  const usageFile = join(usageDir, `run-${++usageFileCounter}`);
  const withTime = existsSync(GNU_TIME);
  const command = withTime ? GNU_TIME : spec.command;
  const args = withTime ? ["-f", "%U %S %M", "-o", usageFile, spec.command, ...spec.args] : spec.args;

  const started = process.hrtime.bigint();
  let exitedAt: bigint | undefined;
  const child = spawn(command, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: spec.env,
    cwd: spec.cwd,
    detached: true,
  });
  child.once("exit", () => {
    exitedAt = process.hrtime.bigint();
  });
  const stdout = collectText(child.stdout);
  const stderr = collectText(child.stderr);
  const closed = new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, closeSignal) => resolve([code, closeSignal]));
  });
  const pid = child.pid;
  const interrupt = registerCleanup(async () => {
    if (pid !== undefined) signalProcessTree(pid, "SIGTERM");
    await closed;
  });
  const [exitCode, signal] = await closed.finally(() => interrupt.forget());
  // Wall time ends at exit, not when the pipes have drained.
  const wallSeconds = Number((exitedAt ?? process.hrtime.bigint()) - started) / 1e9;
  const usage = withTime ? readGnuTimeUsage(usageFile) : null;
  rmSync(usageFile, { force: true });
  return {
    wallSeconds,
    cpuSeconds: usage?.cpuSeconds ?? null,
    peakRssBytes: usage?.peakRssBytes ?? null,
    exitCode,
    signal,
    stdout: stdout(),
    stderr: stderr(),
  };
}

/**
 * `spec` ended after `seconds` (SIGTERM, SIGKILL 5 s later) should it hang: it then exits 124,
 * which commandFailure (transfer.ts) reports as still running.
 */
export function cappedCommand(spec: CommandSpec, seconds: number): CommandSpec {
  return { ...spec, command: "timeout", args: ["-k", "5", String(seconds), spec.command, ...spec.args] };
}

/** Keeps up to 1 MiB of a stream's text: enough for any report, bounded against a chatty tool. */
function collectText(stream: Readable): () => string {
  const limit = 1 << 20;
  let text = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    if (text.length < limit) text += chunk.slice(0, limit - text.length);
  });
  return () => text;
}

function readGnuTimeUsage(path: string): { cpuSeconds: number; peakRssBytes: number } | null {
  if (!existsSync(path)) return null;
  // A non-zero exit adds a "Command exited with non-zero status" line before ours.
  const lastLine = readFileSync(path, "utf8").trim().split("\n").at(-1) ?? "";
  const [user, system, maxRssKb] = lastLine.split(" ").map(Number);
  if (user === undefined || system === undefined || maxRssKb === undefined) return null;
  if (![user, system, maxRssKb].every(Number.isFinite)) return null;
  return { cpuSeconds: user + system, peakRssBytes: maxRssKb * 1024 };
}

export interface ServerUsage {
  /** Cumulative user + sys of the server, its reaped children and its live descendants. */
  cpuSeconds: number;
  /** Largest VmHWM among the live processes of the tree; null if none could be read. */
  peakRssBytes: number | null;
  liveDescendants: number;
}

/** CPU and peak RSS of a long-lived server process tree, from /proc. */
export function serverUsage(pid: number): ServerUsage {
  const tree = processTree(pid);
  const ticks = tree.reduce((sum, member) => sum + member.cpuTicks, 0);
  const peaks = tree.flatMap((member) => readPeakRssBytes(member.pid) ?? []);
  return {
    cpuSeconds: ticks / ticksPerSecond(),
    peakRssBytes: peaks.length === 0 ? null : Math.max(...peaks),
    liveDescendants: Math.max(0, tree.length - 1),
  };
}

/**
 * Waits until the server has no live descendants. A per-connection process may outlive the
 * client by a few milliseconds; once it is reaped its CPU is in the server's cutime/cstime, and
 * reading then avoids counting it twice or not at all. Returns false on timeout.
 */
export async function waitForQuietServer(pid: number, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (serverUsage(pid).liveDescendants > 0) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

export interface PeakRssSampler {
  /** Takes a last sample and returns the largest VmHWM seen in the tree, or null. */
  stop(): number | null;
}

/**
 * Samples the server tree's VmHWM while a run is in flight: per-connection processes are gone
 * (with their high-water mark) by the time the run ends. Every 200 ms costs about 1% of a core.
 */
export function samplePeakRss(pid: number, intervalMs = 200): PeakRssSampler {
  let peak: number | null = null;
  const sample = () => {
    const current = serverUsage(pid).peakRssBytes;
    if (current !== null) peak = Math.max(peak ?? 0, current);
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

export interface ServerCost {
  cpuSeconds: number;
  peakRssBytes: number | null;
}

/**
 * Starts a process's high-water mark over from its current RSS (Linux: `clear_refs` 5), so that
 * a run on a long-lived server is not charged with an earlier run's peak. Best effort: where it
 * cannot be reset, the peak includes what came before.
 */
function resetPeakRss(pid: number): void {
  for (const member of processTree(pid)) {
    try {
      writeFileSync(`/proc/${member.pid}/clear_refs`, "5");
    } catch {
      // Not ours to reset (another user's process, or no procfs): the peak stays cumulative.
    }
  }
}

/**
 * Brackets one run on a long-lived server: CPU is the difference of two readings taken while
 * the server is quiet, peak RSS the largest high-water mark sampled in between.
 */
export async function startServerMeasurement(pid: number): Promise<{ finish(): Promise<ServerCost> }> {
  await waitForQuietServer(pid);
  resetPeakRss(pid);
  const before = serverUsage(pid).cpuSeconds;
  const sampler = samplePeakRss(pid);
  return {
    finish: async () => {
      await waitForQuietServer(pid);
      const after = serverUsage(pid).cpuSeconds;
      return { cpuSeconds: after - before, peakRssBytes: sampler.stop() };
    },
  };
}

/** Reads the whole file so the timed run starts from a warm page cache; drops nothing. */
export async function warmPageCache(path: string): Promise<void> {
  const file = await open(path, "r");
  try {
    const block = Buffer.allocUnsafe(16 << 20);
    while ((await file.read(block, 0, block.length, null)).bytesRead > 0) {
      // Reading is the point; the bytes are discarded.
    }
  } finally {
    await file.close();
  }
}

/** Writes back dirty pages (the previous run's copy) so that writeback does not overlap the next run. */
export function flushDirtyPages(): void {
  spawnSync("sync");
}
