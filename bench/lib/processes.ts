/**
 * Lifecycle of the long-lived helpers a benchmark starts (servers, temp dirs): each one is
 * registered for cleanup so that a crash, a failed assertion or Ctrl-C never leaves a daemon
 * listening or a gigabyte of temp files behind.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { processTree, readProcessEntry } from "./proc.js";

type Cleanup = () => void | Promise<void>;

export interface CleanupHandle {
  /** Runs the cleanup now (once; later calls return the same promise) and unregisters it. */
  run(): Promise<void>;
  /** Unregisters without running: the resource ended by itself. */
  forget(): void;
}

const pending: CleanupHandle[] = [];
let exitHooksInstalled = false;

/**
 * Registers `cleanup` to run on exit, on SIGINT/SIGTERM/SIGHUP, or through the handle. Its
 * synchronous part must do the essential work (send the signal, remove the dir): on 'exit'
 * nothing asynchronous runs any more.
 */
export function registerCleanup(cleanup: Cleanup): CleanupHandle {
  installExitHooks();
  let result: Promise<void> | undefined;
  const handle: CleanupHandle = {
    run: () => {
      handle.forget();
      result ??= runSafely(cleanup);
      return result;
    },
    forget: () => {
      const index = pending.indexOf(handle);
      if (index >= 0) pending.splice(index, 1);
    },
  };
  pending.push(handle);
  return handle;
}

function runSafely(cleanup: Cleanup): Promise<void> {
  try {
    return Promise.resolve(cleanup()).catch(() => undefined);
  } catch {
    // Best effort: one failing cleanup must not keep the others from running.
    return Promise.resolve();
  }
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  // 'exit' also fires after an uncaught exception; only the synchronous part of each cleanup
  // runs there, which is why cleanups signal and delete before they await anything.
  process.once("exit", () => {
    for (const handle of [...pending].reverse()) void handle.run();
  });
  const signals = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;
  for (const [signal, number] of Object.entries(signals)) {
    process.once(signal, async () => {
      // Newest first, awaited: a server is stopped (and reaped, leaving no zombie) before the
      // temp dir holding its config is removed.
      const deadline = sleep(10_000, undefined, { ref: false });
      for (const handle of [...pending].reverse()) await Promise.race([handle.run(), deadline]);
      process.exit(128 + number);
    });
  }
}

export interface TempDir {
  readonly path: string;
  remove(): void;
}

/** A fresh directory under `parent` (the OS temp dir), removed at exit or by `remove()`. */
export function makeTempDir(prefix: string, parent = tmpdir()): TempDir {
  const path = mkdtempSync(join(parent, `teleport-bench-${prefix}-`));
  const cleanup = registerCleanup(() => rmSync(path, { recursive: true, force: true }));
  return { path, remove: () => void cleanup.run() };
}

/**
 * Starts a server that keeps its config and logs in a fresh temp dir. The dir is removed at
 * once should starting fail; otherwise it is the started server's to remove when it stops.
 */
export async function startInTempDir<T>(prefix: string, start: (temp: TempDir) => Promise<T>): Promise<T> {
  const temp = makeTempDir(prefix);
  try {
    return await start(temp);
  } catch (error) {
    temp.remove();
    throw error;
  }
}

export interface ExitState {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  readonly name: string;
  readonly pid: number;
  /** Null while the server runs. */
  exitState(): ExitState | null;
  /** The last lines the server wrote to its log (stdout and stderr). */
  logTail(lines?: number): string;
  /** SIGTERM to the server and everything it started, SIGKILL after a grace period. */
  stop(): Promise<ExitState>;
}

export interface ServerOptions {
  logPath: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/**
 * Starts a server in its own process group, with its output going to a log file rather than a
 * pipe nobody drains.
 */
export async function startServer(
  name: string,
  command: string,
  args: readonly string[],
  options: ServerOptions,
): Promise<ServerProcess> {
  const logFd = openSync(options.logPath, "a");
  const child = spawn(command, args, {
    stdio: ["ignore", logFd, logFd],
    detached: true,
    env: options.env ?? process.env,
    cwd: options.cwd,
  });
  closeSync(logFd);
  await once(child, "spawn");
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: spawn returned no pid`);

  let exitState: ExitState | null = null;
  const exited = new Promise<ExitState>((resolve) => {
    child.once("exit", (code, signal) => {
      exitState = { code, signal };
      resolve(exitState);
    });
  });
  const stopper = registerCleanup(() => stopProcessTree(pid, exited));

  return {
    name,
    pid,
    exitState: () => exitState,
    logTail: (lines = 20) => readTail(options.logPath, lines),
    stop: async () => {
      await stopper.run();
      return exited;
    },
  };
}

async function stopProcessTree(pid: number, exited: Promise<ExitState>): Promise<void> {
  // Listed before the leader dies: its orphans are re-parented and could no longer be found.
  const members = processTree(pid).map((entry) => entry.pid);
  signalProcessTree(pid, "SIGTERM");
  const graceMs = 5000;
  const stopped = await Promise.race([exited.then(() => true), sleep(graceMs, false, { ref: false })]);
  if (!stopped) signalPid(pid, "SIGKILL");
  // Per-connection processes that outlived the leader (or ignored SIGTERM) end here.
  for (const member of members) {
    if (member !== pid && readProcessEntry(member) !== null) signalPid(member, "SIGKILL");
  }
  signalGroup(pid, "SIGKILL");
  await exited;
}

/**
 * Signals a process, its live descendants and its process group. sshd puts each session in a
 * new session (setsid), so the group alone would miss the process doing the transfer.
 */
export function signalProcessTree(pid: number, signal: NodeJS.Signals): void {
  for (const entry of processTree(pid)) signalPid(entry.pid, signal);
  signalGroup(pid, signal);
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // ESRCH: already gone.
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  signalPid(-pid, signal);
}

function readTail(path: string, lines: number): string {
  if (!existsSync(path)) return "";
  return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}

/** A loopback port that was free a moment ago; the server binds it right after. */
export async function findFreePort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, "127.0.0.1");
  await once(probe, "listening");
  const address = probe.address();
  probe.close();
  await once(probe, "close");
  if (address === null || typeof address === "string") throw new Error("no TCP address from probe");
  return address.port;
}

export interface WaitOptions {
  timeoutMs: number;
  /** Fail at once, with its log, if this server dies while we wait. */
  server?: ServerProcess;
}

/** Polls until `ready()` is true; a server that exits meanwhile fails the wait immediately. */
export async function waitUntil(
  what: string,
  ready: () => Promise<boolean>,
  options: WaitOptions,
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const exit = options.server?.exitState();
    if (options.server && exit) {
      throw new Error(
        `${options.server.name} exited (code ${exit.code}, signal ${exit.signal}) before ${what}:\n` +
          options.server.logTail(),
      );
    }
    if (await ready()) return;
    if (Date.now() > deadline) {
      const log = options.server ? `\n${options.server.logTail()}` : "";
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}${log}`);
    }
    await sleep(50);
  }
}

export function waitForPort(port: number, options: WaitOptions): Promise<void> {
  return waitUntil(`port ${port} to accept connections`, () => canConnect(port), options);
}

/**
 * Where a benchmark's servers run and listen: this machine's loopback, or a host of an emulated
 * WAN (NetsimLink.site). Peers and teleport hosts are started through it, so one starter serves
 * both.
 */
export interface ServerSite {
  /** The address servers bind, and clients reach them at. */
  readonly address: string;
  /** A TCP port to listen on: `preferred` where the site is a namespace of its own. */
  port(preferred: number): Promise<number>;
  startServer(
    name: string,
    command: string,
    args: readonly string[],
    options: ServerOptions,
  ): Promise<ServerProcess>;
  /** Waits until something listens on TCP `port` (failing early should `server` exit). */
  waitForListener(port: number, server: ServerProcess): Promise<void>;
}

export const LOOPBACK: ServerSite = {
  address: "127.0.0.1",
  // Loopback is shared with everything else on the machine: never assume a port is free.
  port: () => findFreePort(),
  startServer,
  waitForListener: (port, server) => waitForPort(port, { timeoutMs: 10_000, server }),
};

export function waitForFile(path: string, options: WaitOptions): Promise<void> {
  return waitUntil(`${path} to appear`, async () => existsSync(path), options);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Where copies of many-file trees are made: a memory file system when one has `bytes` free. */
const TREE_SCRATCH = "/dev/shm";

/**
 * The parent folder for copies of a tree of `bytes`: /dev/shm (tmpfs) when it has room, else the
 * OS temp dir. On ext4, creating files soon after deleting others scans the freed inodes one by
 * one, a cost that would fall on whichever tool ran next (docs/decisions.md, "Bench: tree copies
 * on tmpfs").
 */
export function treeScratchParent(bytes: number): string {
  try {
    const stats = statfsSync(TREE_SCRATCH);
    if (stats.type === TMPFS_MAGIC && stats.bavail * stats.bsize > 2 * bytes) return TREE_SCRATCH;
  } catch {
    // no /dev/shm here
  }
  return tmpdir();
}

const TMPFS_MAGIC = 0x01021994;
