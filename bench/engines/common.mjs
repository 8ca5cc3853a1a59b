// Shared by the engine measurements (hyperdht.mjs, libp2p.mjs, teleport.mjs): installing an
// engine into a scratch folder (never into this project), running roles as child processes,
// and the figures every script prints. Loaded only by Node's own modules: the engines are
// imported by the copies of the scripts made inside the scratch folder.
import { execFileSync, spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const MIB = 1024 * 1024;
export const GIB = 1024 * MIB;

/** Bytes per bulk transfer: ENGINES_BYTES, default 1 GiB. */
export function transferBytes() {
  return Number(process.env.ENGINES_BYTES ?? GIB);
}

/** Measured runs per mode: ENGINES_RUNS, default 5. */
export function runCount() {
  return Number(process.env.ENGINES_RUNS ?? 5);
}

/**
 * Installs `packages` (exact versions) with npm into `dir` unless they are there, copies this
 * folder's scripts beside them (so their bare imports resolve to that node_modules), and says so.
 * Returns what the install cost: seconds, bytes on disk, native addons for this platform.
 */
export function installEngine(dir, packages) {
  mkdirSync(dir, { recursive: true });
  const marker = join(dir, ".installed");
  const wanted = packages.join(" ");
  let seconds = null;
  if (!existsSync(marker) || readText(marker) !== wanted) {
    console.error(`engines: installing ${wanted} into ${dir} (a scratch folder, not this project)`);
    if (!existsSync(join(dir, "package.json")))
      writeFileSync(join(dir, "package.json"), '{"name":"engines-scratch","private":true}\n');
    const started = performance.now();
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--save-exact", ...packages], {
      cwd: dir,
      stdio: ["ignore", "ignore", "inherit"],
    });
    seconds = (performance.now() - started) / 1000;
    writeFileSync(marker, wanted);
  } else {
    console.error(`engines: using ${wanted} already installed in ${dir}`);
  }
  const here = dirname(fileURLToPath(import.meta.url));
  for (const name of readdirSync(here)) if (name.endsWith(".mjs")) cpSync(join(here, name), join(dir, name));
  const modules = join(dir, "node_modules");
  return {
    installSeconds: seconds,
    diskBytes: treeBytes(modules),
    packages: countPackages(modules),
    nativeAddons: findFiles(modules, (path) => path.endsWith(".node") && /linux-x64/.test(path)).map((path) =>
      path.slice(modules.length + 1),
    ),
  };
}

function readText(path) {
  return readFileSync(path, "utf8");
}

function treeBytes(dir) {
  let total = 0;
  for (const path of findFiles(dir, () => true)) total += statSync(path).size;
  return total;
}

function countPackages(modules) {
  const isPackageRoot = (path) => /node_modules\/(@[^/]+\/)?[^/@]+\/package\.json$/.test(path);
  return findFiles(modules, isPackageRoot).length;
}

function findFiles(dir, keep) {
  const found = [];
  const walk = (path) => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) walk(child);
      else if (entry.isFile() && keep(child)) found.push(child);
    }
  };
  if (existsSync(dir)) walk(dir);
  return found;
}

/**
 * Starts `node script --role ROLE ...args` and resolves each JSON line it prints to stdout
 * through `onLine`; `exited` resolves with the last line parsed.
 */
export function startRole(script, role, args = [], env = {}) {
  const child = spawn(process.execPath, [script, "--role", role, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, ...env },
  });
  const lines = [];
  const waiters = [];
  let buffered = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (text) => {
    buffered += text;
    let newline = buffered.indexOf("\n");
    while (newline >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line !== "") lines.push(JSON.parse(line));
      for (const waiter of waiters.splice(0)) waiter();
      newline = buffered.indexOf("\n");
    }
  });
  const exited = new Promise((resolve, reject) => {
    child.on("exit", (code, signal) => {
      for (const waiter of waiters.splice(0)) waiter();
      if (code === 0 || signal === "SIGTERM") resolve(lines.at(-1));
      else reject(new Error(`${role} exited with ${code ?? signal}`));
    });
  });
  /** The first line that has `field`. */
  const line = async (field, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = lines.find((parsed) => field in parsed);
      if (found !== undefined) return found;
      if (child.exitCode !== null) throw new Error(`${role} exited before printing ${field}`);
      if (Date.now() > deadline) throw new Error(`${role} printed no ${field} in ${timeoutMs} ms`);
      await new Promise((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  };
  return { child, line, exited, stop: () => child.kill("SIGTERM") };
}

/** The role this process was started in, and the value after `--name`. */
export function argument(name) {
  const index = process.argv.indexOf(`--${name}`);
  return index < 0 ? null : (process.argv[index + 1] ?? null);
}

/** CPU seconds (user + system) this process has used. */
export function cpuSeconds() {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/** CPU seconds another process (of ours) has used so far, from /proc. */
export function processCpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticksPerSecond = 100; // USER_HZ on Linux
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/** Milliseconds since this process started (before Node loaded anything). */
export function sinceProcessStart() {
  return performance.now();
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Median, min and max of one field over the runs, rounded for a table. */
export function summarise(runs, field, digits = 1) {
  const values = runs.map((run) => run[field]);
  const round = (value) => Number(value.toFixed(digits));
  return { median: round(median(values)), min: round(Math.min(...values)), max: round(Math.max(...values)) };
}

/** Both roles' last lines, or an error (and both killed) after `timeoutMs`. */
export async function bothExited(first, second, timeoutMs = 180_000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`a run took over ${timeoutMs / 1000} s`)), timeoutMs);
  });
  try {
    return await Promise.race([Promise.all([first.exited, second.exited]), timeout]);
  } finally {
    clearTimeout(timer);
    first.stop();
    second.stop();
  }
}

/**
 * One run's figures from the client's and server's reports: MB/s over the transfer (first
 * connection to last byte), start-up (client process start to connection open), CPU-s per GiB.
 */
export function runFigures(client, server) {
  const gib = client.bytes / GIB;
  return {
    mbPerSecond: client.bytes / 1e6 / client.transferSeconds,
    startupMs: client.startupMs,
    connectMs: client.connectMs,
    clientCpuPerGib: client.cpuSeconds / gib,
    serverCpuPerGib: server.cpuSeconds / gib,
  };
}

/** The table row every script prints for one mode: medians (min-max) of >= 5 runs. */
export function report(engine, mode, runs, extra = {}) {
  const row = {
    engine,
    mode,
    runs: runs.length,
    bytes: transferBytes(),
    mbPerSecond: summarise(runs, "mbPerSecond"),
    startupMs: summarise(runs, "startupMs", 0),
    connectMs: summarise(runs, "connectMs", 0),
    clientCpuPerGib: summarise(runs, "clientCpuPerGib", 2),
    serverCpuPerGib: summarise(runs, "serverCpuPerGib", 2),
    ...extra,
  };
  console.log(JSON.stringify(row));
  return row;
}

/** Writes `total` bytes of `block` to a writable, waiting for 'drain' when it says so. */
export async function writeBulk(stream, block, total) {
  let sent = 0;
  while (sent < total) {
    const piece = total - sent >= block.length ? block : block.subarray(0, total - sent);
    sent += piece.length;
    if (!stream.write(piece)) await new Promise((resolve) => stream.once("drain", resolve));
  }
}
