/**
 * What a benchmark run costs: wall seconds, CPU seconds (user + sys) and peak RSS, for the
 * client command (through GNU time, which sees every process the command waited for) and for
 * a long-lived server (through /proc, since it never exits between runs).
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";

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
let usageFileCounter = 0;

/** Runs a command to completion and measures it. Never throws for a non-zero exit. */
export async function measureCommand(spec: CommandSpec): Promise<CommandUsage> {
  const usageFile = join(tmpdir(), `teleport-bench-usage-${process.pid}-${++usageFileCounter}`);
  const withTime = existsSync(GNU_TIME);
  const command = withTime ? GNU_TIME : spec.command;
  const args = withTime ? ["-f", "%U %S %M", "-o", usageFile, spec.command, ...spec.args] : spec.args;

  const started = process.hrtime.bigint();
  let exitedAt: bigint | undefined;
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: spec.env, cwd: spec.cwd });
  child.once("exit", () => {
    exitedAt = process.hrtime.bigint();
  });
  const stdout = collectText(child.stdout);
  const stderr = collectText(child.stderr);
  const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, closeSignal) => resolve([code, closeSignal]));
  });
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

interface ProcessTimes {
  pid: number;
  parentPid: number;
  /** utime + stime + cutime + cstime: its own CPU plus that of children it has reaped. */
  ticks: number;
}

let clockTicksPerSecond: number | undefined;

function ticksPerSecond(): number {
  if (clockTicksPerSecond === undefined) {
    const reported = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    clockTicksPerSecond = Number.isFinite(reported) && reported > 0 ? reported : 100;
  }
  return clockTicksPerSecond;
}

function readProcessTimes(pid: number): ProcessTimes | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null; // exited between listing and reading
  }
  // The command name may contain spaces and parentheses; fields resume after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const field = (number: number) => Number(fields[number - 3] ?? Number.NaN);
  return { pid, parentPid: field(4), ticks: field(14) + field(15) + field(16) + field(17) };
}

function readPeakRssBytes(pid: number): number | null {
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match?.[1] === undefined ? null : Number(match[1]) * 1024;
  } catch {
    return null;
  }
}

/** The process and every live descendant (sshd and rsync fork one per connection). */
function processTree(rootPid: number): ProcessTimes[] {
  const root = readProcessTimes(rootPid);
  if (root === null) return [];
  const all = readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .flatMap((name) => readProcessTimes(Number(name)) ?? []);
  const tree = [root];
  for (let i = 0; i < tree.length; i++) {
    const parent = tree[i];
    if (parent !== undefined) tree.push(...all.filter((candidate) => candidate.parentPid === parent.pid));
  }
  return tree;
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
  const ticks = tree.reduce((sum, member) => sum + member.ticks, 0);
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
 * Brackets one run on a long-lived server: CPU is the difference of two readings taken while
 * the server is quiet, peak RSS the largest high-water mark sampled in between.
 */
export async function startServerMeasurement(pid: number): Promise<{ finish(): Promise<ServerCost> }> {
  await waitForQuietServer(pid);
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

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const upper = sorted[middle];
  if (upper === undefined) throw new Error("median of no values");
  const lower = sorted[middle - 1];
  return sorted.length % 2 === 1 || lower === undefined ? upper : (lower + upper) / 2;
}

export function minimum(values: readonly number[]): number {
  if (values.length === 0) throw new Error("minimum of no values");
  return Math.min(...values);
}

export function maximum(values: readonly number[]): number {
  if (values.length === 0) throw new Error("maximum of no values");
  return Math.max(...values);
}
