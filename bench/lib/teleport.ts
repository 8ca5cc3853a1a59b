/**
 * Drives the built teleport CLI the way a user does: one `teleport host` kept running, and a
 * `teleport pull --json` per measured run, whose one-line summary is read here and nowhere else.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { PullSummary } from "../../src/client/pull.js";
import type { CommandSpec } from "./measure.js";
import {
  type ExitState,
  LOOPBACK,
  type ServerProcess,
  type ServerSite,
  startInTempDir,
  waitUntil,
} from "./processes.js";

/** The compiled CLI entry point, or null when the project has not been built. */
export function findTeleportCli(repoRoot: string): string | null {
  const mainPath = join(repoRoot, "dist", "src", "cli", "bin.js");
  return existsSync(mainPath) ? mainPath : null;
}

export interface TeleportHost {
  readonly link: string;
  /** The write link (`--allow-upload`), the link file's second line; "" without. */
  readonly writeLink: string;
  readonly server: ServerProcess;
  /** From spawn to the link file being written: startup plus indexing the share. */
  readonly readySeconds: number;
  /** SIGTERM; the contract is a clean exit with code 0. */
  stop(): Promise<ExitState>;
}

export interface TeleportHostOptions {
  /**
   * TELEPORT_HOME; fresh unless given. A home kept between runs keeps the host's chunk index,
   * so an unchanged share is not hashed again.
   */
  home?: string;
  /** `teleport host` options after the usual ones. */
  hostArgs?: readonly string[];
  /** Where it runs and binds: loopback by default, or a host of an emulated WAN. */
  site?: ServerSite;
}

/** Starts `teleport host` on `shareDir` and waits for its link. */
export function startTeleportHost(
  cliPath: string,
  shareDir: string,
  options: TeleportHostOptions = {},
): Promise<TeleportHost> {
  const site = options.site ?? LOOPBACK;
  const hostArgs = options.hostArgs ?? [];
  return startInTempDir("teleport-host", async (temp) => {
    const linkFile = join(temp.path, "link");
    const home = options.home ?? join(temp.path, "home");
    mkdirSync(home, { recursive: true });
    const started = process.hrtime.bigint();
    const server = await site.startServer(
      ["teleport host", ...hostArgs].join(" "),
      process.execPath,
      // --bind: the default 0.0.0.0 would advertise this machine's external address in the
      // link; a benchmark is defined on its site's address.
      [
        cliPath,
        "host",
        shareDir,
        "--port",
        "0",
        "--bind",
        site.address,
        "--link-file",
        linkFile,
        ...hostArgs,
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
      writeLink: (readFileSync(linkFile, "utf8").split("\n")[1] ?? "").trim(),
      server,
      readySeconds,
      stop: async () => {
        const exit = await server.stop();
        temp.remove();
        return exit;
      },
    };
  });
}

/** The share link a host wrote to `linkFile`; "" until it has. */
export function readLinkFile(linkFile: string): string {
  return existsSync(linkFile) ? (readFileSync(linkFile, "utf8").split("\n")[0] ?? "").trim() : "";
}

/** Why a host did not stop cleanly, or null when it exited 0 on SIGTERM. */
export function uncleanExit(exit: ExitState): string | null {
  return exit.code === 0 ? null : `host did not exit 0 on SIGTERM: code ${exit.code}, ${exit.signal}`;
}

/**
 * A cold pull: `clientHome` must be a fresh TELEPORT_HOME, so no chunk store from an earlier
 * run can make it a re-pull. `pullArgs` go after the usual ones (`--path NAME`, `--streams 4`).
 */
export function teleportPullCommand(
  cliPath: string,
  link: string,
  destDir: string,
  clientHome: string,
  pullArgs: readonly string[] = [],
): CommandSpec {
  return {
    command: process.execPath,
    args: [cliPath, "pull", link, destDir, "--json", ...pullArgs],
    env: { ...process.env, TELEPORT_HOME: clientHome },
  };
}

/** The one JSON line `teleport pull --json` prints: the pull's summary and what the process cost. */
export interface PullReport extends PullSummary {
  cpuSeconds: number;
  peakRssBytes: number;
}

/** Fields every use of a report reads; their absence means the line is not a pull summary. */
const REQUIRED_FIELDS = [
  "files",
  "bytes",
  "bytesFromNetwork",
  "bytesReused",
  "bytesOnWire",
  "seconds",
] as const;

export function parsePullReport(stdout: string): PullReport {
  const line = stdout.trim().split("\n").at(-1) ?? "";
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new Error(`teleport pull --json printed no JSON line: ${JSON.stringify(stdout.slice(-300))}`);
  }
  if (typeof parsed !== "object" || parsed === null)
    throw new Error(`teleport pull report is not an object: ${line}`);
  const missing = REQUIRED_FIELDS.filter(
    (field) => typeof (parsed as Record<string, unknown>)[field] !== "number",
  );
  if (missing.length > 0) throw new Error(`teleport pull report lacks ${missing.join(", ")}: ${line}`);
  // The CLI writes the summary it got from pull(): checked above for the fields a mismatch would break.
  return parsed as PullReport;
}
