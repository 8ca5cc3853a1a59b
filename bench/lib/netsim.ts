/**
 * An emulated WAN link from ../shared/tools/netsim for a benchmark: two network namespaces, `a`
 * (the client, 10.77.0.1) and `b` (the servers, 10.77.0.2), joined by a forwarder with a delay, a
 * rate limit and random loss. The link is taken down at the end and, through registerCleanup, on
 * a crash or Ctrl-C too: `netsim down` also ends every process still running in its namespaces.
 */
import { execFile, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { CommandSpec } from "./measure.js";
import {
  type CleanupHandle,
  registerCleanup,
  type ServerOptions,
  type ServerSite,
  startServer,
  waitUntil,
} from "./processes.js";

const execFileAsync = promisify(execFile);

export type Side = "a" | "b";

export interface LinkSettings {
  rateMbit: number;
  /** One way; the RTT is twice this. */
  delayMs: number;
  /** Per packet and direction, a probability (0.001 = 0.1%). */
  loss: number;
  /** The namespaces' default TCP congestion control; unset inherits the host's (bbr here). */
  congestionControl?: "reno" | "bbr";
}

/** The netsim command: $NETSIM, else shared/ beside the repository (as on CI). */
export function findNetsim(repoRoot: string): string | null {
  const path = process.env.NETSIM ?? join(repoRoot, "..", "shared", "tools", "netsim", "netsim");
  return existsSync(path) ? path : null;
}

/** Why no link can be brought up here, or null when one can. */
export function whyNoNetsim(repoRoot: string): string | null {
  if (process.getuid?.() !== 0) return "netsim needs root (network namespaces, TUN devices)";
  if (findNetsim(repoRoot) === null) return "netsim not found (../shared/tools/netsim/netsim or $NETSIM)";
  if (!existsSync("/dev/net/tun")) return "no /dev/net/tun: netsim needs TUN support";
  return null;
}

/** TCP goodput a full link gives: rate and queue count IP bytes, MSS 1448 of MTU 1500. */
export function tcpGoodputMbit(settings: LinkSettings): number {
  return (settings.rateMbit * 1448) / 1500;
}

/** "1000 Mbit/s, 50 ms RTT, 0.1% loss (reno)". */
export function describeLink(settings: LinkSettings): string {
  const loss = settings.loss > 0 ? `, ${settings.loss * 100}% loss` : "";
  const cc = settings.congestionControl === undefined ? "" : ` (${settings.congestionControl})`;
  return `${settings.rateMbit} Mbit/s, ${2 * settings.delayMs} ms RTT${loss}${cc}`;
}

export interface NetsimLink {
  readonly name: string;
  readonly settings: LinkSettings;
  readonly addresses: Readonly<Record<Side, string>>;
  /** `command args` run inside host `side`, for measureCommand. */
  command(side: Side, command: string, args: readonly string[], env?: NodeJS.ProcessEnv): CommandSpec;
  /**
   * Host `side` as a place to run long-lived servers, binding its link address; a server's pid
   * is its own (netsim execs into it).
   */
  site(side: Side): ServerSite;
  /** The namespace's default congestion control, as the kernel reports it. */
  congestionControl(side: Side): Promise<string>;
  /** The forwarder's counters per direction (packets, lost, queue-dropped, delivered). */
  counters(): string[];
  /** Idempotent: stops the forwarder and every process left in the namespaces. */
  down(): Promise<void>;
}

/** Brings up link `name` (taking down a stale one of that name first). */
export async function bringUpLink(netsim: string, name: string, settings: LinkSettings): Promise<NetsimLink> {
  runNetsim(netsim, ["down", "--name", name]);
  // Synchronous, so that it still runs from the 'exit' hook, where nothing asynchronous does.
  const teardown: CleanupHandle = registerCleanup(() => {
    runNetsim(netsim, ["down", "--name", name]);
  });
  const up = runNetsim(netsim, [
    "up",
    "--name",
    name,
    "--delay-ms",
    String(settings.delayMs),
    "--rate-mbit",
    String(settings.rateMbit),
    "--loss",
    String(settings.loss),
    ...(settings.congestionControl === undefined ? [] : ["--cc", settings.congestionControl]),
  ]);
  if (!up.ok) {
    await teardown.run();
    throw new Error(`netsim up failed: ${up.output.trim()}`);
  }
  // `up` prints "A B" on its first line.
  const [a, b] = (up.output.trim().split("\n")[0] ?? "").split(" ");
  if (a === undefined || b === undefined) {
    await teardown.run();
    throw new Error(`netsim up printed no addresses: ${up.output.trim()}`);
  }
  return linkHandle(netsim, name, settings, { a, b }, teardown);
}

function linkHandle(
  netsim: string,
  name: string,
  settings: LinkSettings,
  addresses: Record<Side, string>,
  teardown: CleanupHandle,
): NetsimLink {
  const execArgs = (side: Side, command: string, args: readonly string[]) => [
    "exec",
    name,
    side,
    "--",
    command,
    ...args,
  ];
  const readInside = async (side: Side, path: string) =>
    (await execFileAsync(netsim, execArgs(side, "cat", [path]), { encoding: "utf8" })).stdout;
  const startServerIn = (
    side: Side,
    serverName: string,
    command: string,
    args: readonly string[],
    options: ServerOptions,
  ) => startServer(serverName, netsim, execArgs(side, command, args), options);
  // A socket bound to :: (dual stack, as iperf3's) is listed in tcp6 only.
  const isListening = async (side: Side, port: number) =>
    listensOn(await readInside(side, "/proc/net/tcp"), port) ||
    listensOn(await readInside(side, "/proc/net/tcp6"), port);
  return {
    name,
    settings,
    addresses,
    command: (side, command, args, env) => ({
      command: netsim,
      args: execArgs(side, command, args),
      ...(env === undefined ? {} : { env }),
    }),
    site: (side) => ({
      address: addresses[side],
      // A namespace of its own: nothing else listens there, so the usual port is free.
      port: async (preferred) => preferred,
      startServer: (serverName, command, args, options) =>
        startServerIn(side, serverName, command, args, options),
      waitForListener: (port, server) =>
        waitUntil(`${server.name} to listen on port ${port}`, () => isListening(side, port), {
          timeoutMs: 10_000,
          server,
        }),
    }),
    congestionControl: async (side) =>
      (await readInside(side, "/proc/sys/net/ipv4/tcp_congestion_control")).trim(),
    counters: () =>
      runNetsim(netsim, ["status", "--name", name])
        .output.split("\n")
        .filter((line) => line.startsWith("stats "))
        .map((line) => line.trim()),
    down: () => teardown.run(),
  };
}

/** /proc/net/tcp lists local addresses as hex `ADDR:PORT`; state 0A is LISTEN. */
function listensOn(procNetTcp: string, port: number): boolean {
  const portHex = port.toString(16).toUpperCase().padStart(4, "0");
  return procNetTcp
    .split("\n")
    .slice(1)
    .some((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[1]?.endsWith(`:${portHex}`) === true && fields[3] === "0A";
    });
}

function runNetsim(netsim: string, args: readonly string[]): { ok: boolean; output: string } {
  const result = spawnSync(netsim, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 60_000,
  });
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}${result.error ? String(result.error) : ""}`;
  return { ok: result.status === 0, output };
}
