/**
 * Lifecycle of the long-lived helpers a benchmark starts (servers, temp dirs): each one is
 * registered for cleanup so that a crash, a failed assertion or Ctrl-C never leaves a daemon
 * listening or a gigabyte of temp files behind.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

type Cleanup = () => void;

const cleanups: Cleanup[] = [];
let exitHooksInstalled = false;

/** Runs `cleanup` at exit unless the returned function is called first (it then runs it once). */
export function registerCleanup(cleanup: Cleanup): () => void {
  installExitHooks();
  let done = false;
  const runOnce: Cleanup = () => {
    if (done) return;
    done = true;
    const index = cleanups.indexOf(runOnce);
    if (index >= 0) cleanups.splice(index, 1);
    cleanup();
  };
  cleanups.push(runOnce);
  return runOnce;
}

function runAllCleanups(): void {
  // Newest first: a server is stopped before the temp dir holding its config is removed.
  for (const cleanup of [...cleanups].reverse()) {
    try {
      cleanup();
    } catch {
      // Best effort: one failing cleanup must not keep the others from running.
    }
  }
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  // 'exit' also fires after an uncaught exception, so this covers crashes too.
  process.once("exit", runAllCleanups);
  const signals = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;
  for (const [signal, number] of Object.entries(signals)) {
    process.once(signal, () => {
      runAllCleanups();
      process.exit(128 + number);
    });
  }
}

/** A fresh directory under the OS temp dir, removed at exit or by `remove()`. */
export function makeTempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), `teleport-bench-${prefix}-`));
  const remove = registerCleanup(() => rmSync(path, { recursive: true, force: true }));
  return { path, remove };
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
  /** SIGTERM to the server's process group, SIGKILL after a grace period. */
  stop(): Promise<ExitState>;
}

export interface ServerOptions {
  logPath: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/**
 * Starts a server in its own process group, so that stopping it also ends the per-connection
 * processes it forked (sshd, rsync --daemon), and output goes to a log file rather than a pipe
 * nobody drains.
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
  const unregister = registerCleanup(() => killGroupSync(pid));

  return {
    name,
    pid,
    exitState: () => exitState,
    logTail: (lines = 20) => readTail(options.logPath, lines),
    stop: async () => {
      unregister();
      return exitState ?? (await stopGroup(pid, exited));
    },
  };
}

async function stopGroup(pid: number, exited: Promise<ExitState>): Promise<ExitState> {
  signalGroup(pid, "SIGTERM");
  const graceMs = 5000;
  const result = await Promise.race([exited, sleep(graceMs).then(() => null)]);
  if (result !== null) {
    // The leader is gone; end any per-connection process that outlived it.
    signalGroup(pid, "SIGKILL");
    return result;
  }
  signalGroup(pid, "SIGKILL");
  return exited;
}

/** Synchronous variant for the 'exit' hook, where no promise will ever resolve. */
function killGroupSync(pid: number): void {
  signalGroup(pid, "SIGTERM");
  const deadline = Date.now() + 1000;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (groupAlive(pid) && Date.now() < deadline) Atomics.wait(pause, 0, 0, 20);
  signalGroup(pid, "SIGKILL");
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
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
