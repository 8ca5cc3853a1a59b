/**
 * Drives the built teleport CLI the way a user does: one `teleport host` kept running, and a
 * `teleport pull --json` per measured run.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { CommandSpec } from "./measure.js";
import { type ExitState, makeTempDir, type ServerProcess, startServer, waitUntil } from "./processes.js";

/** The compiled CLI entry point, or null when the project has not been built. */
export function findTeleportCli(repoRoot: string): string | null {
  const mainPath = join(repoRoot, "dist", "src", "cli", "bin.js");
  return existsSync(mainPath) ? mainPath : null;
}

export interface TeleportHost {
  readonly link: string;
  readonly server: ServerProcess;
  /** From spawn to the link file being written: startup plus indexing the share. */
  readonly readySeconds: number;
  /** SIGTERM; the contract is a clean exit with code 0. */
  stop(): Promise<ExitState>;
}

/**
 * Starts `teleport host` on `shareDir`, with `extraArgs` after the usual ones. Its TELEPORT_HOME
 * is fresh unless `home` is given: a home kept between runs keeps the host's chunk index, so an
 * unchanged share is not hashed again.
 */
export async function startTeleportHost(
  cliPath: string,
  shareDir: string,
  home?: string,
  extraArgs: readonly string[] = [],
): Promise<TeleportHost> {
  const temp = makeTempDir("teleport-host");
  const linkFile = join(temp.path, "link");
  home ??= join(temp.path, "home");
  mkdirSync(home, { recursive: true });
  try {
    const started = process.hrtime.bigint();
    const server = await startServer(
      "teleport host",
      process.execPath,
      // --bind: the default 0.0.0.0 would advertise this machine's external address in the
      // link; the benchmark is defined on loopback.
      [
        cliPath,
        "host",
        shareDir,
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--link-file",
        linkFile,
        ...extraArgs,
      ],
      { logPath: join(temp.path, "host.log"), env: { ...process.env, TELEPORT_HOME: home } },
    );
    // Wait for content, not just existence, in case the file is created before it is written.
    await waitUntil("the share link", async () => readLinkFile(linkFile) !== "", {
      timeoutMs: 120_000,
      server,
    });
    const readySeconds = Number(process.hrtime.bigint() - started) / 1e9;
    return {
      link: readLinkFile(linkFile),
      server,
      readySeconds,
      stop: async () => {
        const exit = await server.stop();
        temp.remove();
        return exit;
      },
    };
  } catch (error) {
    temp.remove();
    throw error;
  }
}

/** The share link a host wrote to `linkFile`; "" until it has. */
export function readLinkFile(linkFile: string): string {
  return existsSync(linkFile) ? (readFileSync(linkFile, "utf8").split("\n")[0] ?? "").trim() : "";
}

/**
 * A cold pull: `clientHome` must be a fresh TELEPORT_HOME, so no chunk store from an earlier
 * run can make it a re-pull.
 */
export function teleportPullCommand(
  cliPath: string,
  link: string,
  destDir: string,
  clientHome: string,
): CommandSpec {
  return {
    command: process.execPath,
    args: [cliPath, "pull", link, destDir, "--json"],
    env: { ...process.env, TELEPORT_HOME: clientHome },
  };
}

/** The one JSON line `teleport pull --json` prints. */
export interface PullReport {
  files: number;
  bytes: number;
  bytesFromNetwork: number;
  bytesReused: number;
  /** Chunk frames as they crossed the wire (compressed where they were). */
  bytesOnWire: number;
  seconds: number;
}

export function parsePullReport(stdout: string): PullReport {
  const line = stdout.trim().split("\n").at(-1) ?? "";
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new Error(`teleport pull --json printed no JSON line: ${JSON.stringify(stdout.slice(-300))}`);
  }
  const fields = ["files", "bytes", "bytesFromNetwork", "bytesReused", "bytesOnWire", "seconds"] as const;
  const record = (typeof parsed === "object" && parsed !== null ? parsed : {}) as Record<string, unknown>;
  const missing = fields.filter((field) => typeof record[field] !== "number");
  if (missing.length > 0) throw new Error(`teleport pull report lacks ${missing.join(", ")}: ${line}`);
  return record as unknown as PullReport;
}
