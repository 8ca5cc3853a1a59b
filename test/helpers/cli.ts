/**
 * The built CLI as child processes: one-shot commands (`runCli`), long-running ones (`spawnCli`)
 * and a real `teleport host` on a loopback port chosen by the kernel (`startHost`).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { createProgram } from "../../src/cli/main.js";
import { waitFor } from "./context.js";

/** dist/src/cli/bin.js, next to this file's compiled form in dist/test/helpers. */
export const CLI_PATH = fileURLToPath(new URL("../../src/cli/bin.js", import.meta.url));

/** Every CLI run names its own state folder so no test touches ~/.teleport or another test's identity. */
export type CliEnv = { TELEPORT_HOME: string } & Record<string, string>;

export interface CliResult {
  /** Exit code, or null if the process died from a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** stdout exactly as written, for byte comparisons (`cat`). */
  stdoutBytes: Buffer;
  stderr: string;
}

export interface RunningCli {
  process: ChildProcess;
  /** Resolves when the process has exited and its output is closed. */
  result: Promise<CliResult>;
  /** stdout so far. */
  stdout(): string;
  /** stderr so far. */
  stderr(): string;
}

/** A CLI stack trace: "    at fn (file:line:col)" lines; the CLI must print none. */
export const STACK_TRACE_LINE = /^\s+at\s.+:\d+:\d+\)?$/m;

function childEnv(env: CliEnv): NodeJS.ProcessEnv {
  const merged: NodeJS.ProcessEnv = { ...process.env };
  // The test runner's marker would make a child that loads node:test report to us.
  delete merged.NODE_TEST_CONTEXT;
  delete merged.TELEPORT_DEBUG;
  return { ...merged, ...env };
}

/**
 * `wrapper` runs the CLI through another command (such as `setpriv` to drop root); `stdin` is
 * written to its stdin (otherwise stdin is closed).
 */
export function spawnCli(
  args: string[],
  env: CliEnv,
  wrapper: readonly string[] = [],
  stdin?: string,
): RunningCli {
  const [command, ...wrapperArgs] = [...wrapper, process.execPath, CLI_PATH, ...args];
  const child = spawn(command as string, wrapperArgs, {
    env: childEnv(env),
    stdio: [stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
  });
  child.stdin?.end(stdin);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on("data", (data: Buffer) => out.push(data));
  child.stderr?.on("data", (data: Buffer) => err.push(data));
  const result = new Promise<CliResult>((resolve, reject) => {
    child.once("error", reject);
    // 'close' (not 'exit'): all output has been read by then.
    child.once("close", (code, signal) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({
        code,
        signal,
        stdout: stdoutBytes.toString("utf8"),
        stdoutBytes,
        stderr: Buffer.concat(err).toString("utf8"),
      });
    });
  });
  return {
    process: child,
    result,
    stdout: () => Buffer.concat(out).toString("utf8"),
    stderr: () => Buffer.concat(err).toString("utf8"),
  };
}

/** Runs one CLI command to completion; a command still running after `timeoutMs` is killed and fails. */
export async function runCli(
  args: string[],
  env: CliEnv,
  options: { timeoutMs?: number; stdin?: string } = {},
): Promise<CliResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const running = spawnCli(args, env, [], options.stdin);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    running.process.kill("SIGKILL");
  }, timeoutMs);
  try {
    const result = await running.result;
    if (timedOut) {
      throw new Error(
        `teleport ${args.join(" ")} did not finish within ${timeoutMs} ms; stderr: ${result.stderr}`,
      );
    }
    return result;
  } finally {
    clearTimeout(timer);
  }
}

export interface HostProcess {
  /** The share link, as printed on the first line of stdout and written to the link file. */
  link: string;
  /** The write link (`--allow-upload`), printed and written on the second line; undefined without. */
  writeLink: string | undefined;
  process: ChildProcess;
  /** Resolves when the host process has exited. */
  exited: Promise<CliResult>;
  stderr(): string;
  /** SIGTERM, then SIGKILL if the host has not exited within a few seconds. Idempotent. */
  stop(): Promise<void>;
}

export interface StartHostOptions {
  /** TELEPORT_HOME of the host (its identity lives there). */
  home: string;
  /** Where the host writes its link once listening; default inside `home`. */
  linkFile?: string;
  readyTimeoutMs?: number;
  /** Default 0: a free port. */
  port?: number;
  /** Runs the host through this command (see spawnCli). */
  wrapper?: readonly string[];
  /** More `teleport host` options. */
  args?: readonly string[];
}

const STOP_GRACE_MS = 5_000;

/** Spawns `teleport host DIR --port PORT --bind 127.0.0.1` and resolves once it is listening. */
export async function startHost(dir: string, options: StartHostOptions): Promise<HostProcess> {
  const linkFile = options.linkFile ?? join(options.home, "share-link.txt");
  const port = String(options.port ?? 0);
  const running = spawnCli(
    ["host", dir, "--port", port, "--bind", "127.0.0.1", "--link-file", linkFile, ...(options.args ?? [])],
    {
      TELEPORT_HOME: options.home,
    },
    options.wrapper,
  );
  let exitedEarly: CliResult | undefined;
  running.result.then(
    (result) => {
      exitedEarly = result;
    },
    () => {},
  );
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      const child = running.process;
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
      try {
        await running.result;
      } finally {
        clearTimeout(timer);
      }
    })();
    return stopping;
  };
  try {
    const link = await waitFor(
      async () => {
        if (exitedEarly !== undefined) {
          throw new Error(
            `teleport host exited (${exitedEarly.code ?? exitedEarly.signal}) before listening: ${exitedEarly.stderr}`,
          );
        }
        const written = await readFile(linkFile, "utf8").catch(() => undefined);
        const printed = running.stdout().split("\n")[0];
        // The link file is written after the stdout line: both present means ready and consistent.
        if (written === undefined || printed === undefined || !running.stdout().includes("\n"))
          return undefined;
        if (written.split("\n")[0]?.trim() !== printed.trim()) {
          throw new Error(
            `link file ${JSON.stringify(written)} differs from stdout ${JSON.stringify(printed)}`,
          );
        }
        // With --allow-upload the write link follows on the second line of both.
        if (!running.stdout().startsWith(written)) return undefined;
        return printed.trim();
      },
      { what: "teleport host to write its link file", timeoutMs: options.readyTimeoutMs ?? 20_000 },
    );
    const writeLink = running.stdout().split("\n")[1]?.trim() || undefined;
    return {
      link,
      writeLink,
      process: running.process,
      exited: running.result,
      stderr: running.stderr,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Returns `link` with its query parameter `name` set to `value`. */
export function withLinkParam(link: string, name: "fp" | "key", value: string): string {
  const url = new URL(link);
  url.searchParams.set(name, value);
  return url.toString();
}

export function linkParam(link: string, name: "fp" | "key"): string {
  const value = new URL(link).searchParams.get(name);
  if (value === null) throw new Error(`link ${link} has no ${name}`);
  return value;
}

/** Parses `args` with every command's action replaced by a recorder; returns the options it got. */
export async function parsedOptions(args: string[]): Promise<Record<string, unknown>> {
  const program = createProgram({ stdout: () => {}, stderr: () => {} });
  let received: Record<string, unknown> | undefined;
  const record = (command: Command) => {
    command.action(() => {
      received = command.opts();
    });
    for (const sub of command.commands) record(sub);
  };
  for (const command of program.commands) record(command);
  await program.parseAsync(args, { from: "user" });
  assert.ok(received !== undefined, `no command ran for ${args.join(" ")}`);
  return received;
}
