/**
 * Reading Linux /proc: process parentage, CPU ticks and peak RSS. Servers fork per connection
 * (and sshd's session processes even leave the server's process group), so walking parentage
 * is the only way to find, measure and stop everything a server started.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

export interface ProcessEntry {
  pid: number;
  parentPid: number;
  /** utime + stime + cutime + cstime: its own CPU plus that of children it has reaped. */
  cpuTicks: number;
}

export function readProcessEntry(pid: number): ProcessEntry | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null; // exited between listing and reading
  }
  // The command name may contain spaces and parentheses; fields resume after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const field = (number: number) => Number(fields[number - 3] ?? Number.NaN);
  return { pid, parentPid: field(4), cpuTicks: field(14) + field(15) + field(16) + field(17) };
}

/** The process first, then every live descendant; empty if the process is gone. */
export function processTree(rootPid: number): ProcessEntry[] {
  const root = readProcessEntry(rootPid);
  if (root === null) return [];
  const all = readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .flatMap((name) => readProcessEntry(Number(name)) ?? []);
  const tree = [root];
  for (let i = 0; i < tree.length; i++) {
    const parent = tree[i];
    if (parent !== undefined) tree.push(...all.filter((entry) => entry.parentPid === parent.pid));
  }
  return tree;
}

/** VmHWM, the peak resident set size; null for a process that is gone or a zombie. */
export function readPeakRssBytes(pid: number): number | null {
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match?.[1] === undefined ? null : Number(match[1]) * 1024;
  } catch {
    return null;
  }
}

let clockTicksPerSecond: number | undefined;

export function ticksPerSecond(): number {
  if (clockTicksPerSecond === undefined) {
    const reported = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    clockTicksPerSecond = Number.isFinite(reported) && reported > 0 ? reported : 100;
  }
  return clockTicksPerSecond;
}
