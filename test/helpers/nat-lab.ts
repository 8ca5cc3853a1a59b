/**
 * A NAT lab for tests and benchmarks: a relay on a "public" network, a host behind NAT A and a
 * client behind NAT B, in network namespaces built by bench/nat-lab.sh (which documents the
 * topology, the addresses and what each NAT kind does). Each lab has its own random id, so labs
 * run side by side; `close()` tears it down, and so does this process's exit.
 *
 *   const lab = await openNatLab({ hostNat: "cone", clientNat: "cone" });
 *   try { spawnCli([...], env, lab.wrapper("client")) } finally { await lab.close() }
 */
import { type ChildProcess, execFile, execFileSync, type SpawnOptions, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** The lab's script, in the source tree (it is not compiled): dist/test/helpers -> bench/. */
export const NAT_LAB_SCRIPT = fileURLToPath(new URL("../../../bench/nat-lab.sh", import.meta.url));

export type NatKind = "cone" | "full-cone" | "symmetric";

export type NatLabRole = "core" | "relay" | "host-router" | "client-router" | "host" | "client";

/** The routers' public links, each direction; the host-client RTT is 4 x delayMs. */
export interface NatLabShape {
  delayMs: number;
  /** Per direction; 0 = unlimited. */
  rateMbit: number;
  /** Probability per packet, each direction. */
  loss?: number;
}

export interface NatLabOptions {
  hostNat: NatKind;
  clientNat: NatKind;
  shape?: NatLabShape;
}

export interface NatLab {
  readonly id: string;
  readonly namespaces: Readonly<Record<NatLabRole, string>>;
  /** relay: its public address; host-router/client-router: the NATs' public addresses; host/client: private. */
  readonly addresses: Readonly<Record<Exclude<NatLabRole, "core">, string>>;
  /** Prefix for a command to run it in `role`'s namespace (spawnCli's `wrapper`). */
  wrapper(role: NatLabRole): string[];
  /** Starts `command args` in `role`'s namespace. */
  spawn(role: NatLabRole, command: string, args: readonly string[], options?: SpawnOptions): ChildProcess;
  /** Runs `command args` in `role`'s namespace to completion; rejects on a non-zero exit. */
  run(role: NatLabRole, command: string, args: readonly string[]): Promise<string>;
  /** Deletes every namespace and forwarder of the lab; idempotent. */
  close(): Promise<void>;
}

/** Why no lab can be built here, or null when one can. Tests skip with this message. */
export function whyNoNatLab(options: { shaped?: boolean } = {}): string | null {
  if (process.platform !== "linux") return "the NAT lab needs Linux network namespaces";
  if (process.getuid?.() !== 0) return "the NAT lab needs root (network namespaces, nftables)";
  for (const tool of ["ip", "nft"]) {
    try {
      execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    } catch {
      return `the NAT lab needs ${tool} (Debian packages iproute2, nftables)`;
    }
  }
  if (options.shaped === true) {
    if (!existsSync("/dev/net/tun")) return "a shaped NAT lab needs /dev/net/tun (netsim's forwarder)";
    const source =
      process.env.NETSIM_FWD_SRC ??
      fileURLToPath(new URL("../../../../shared/tools/netsim/netsim-fwd.c", import.meta.url));
    if (!existsSync(source))
      return `a shaped NAT lab needs netsim's forwarder source (${source} or $NETSIM_FWD_SRC)`;
  }
  return null;
}

const open = new Set<string>();
let exitHookInstalled = false;

/** A lab left open when the process exits (a failed test, ^C) is still torn down. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const id of open) {
      try {
        execFileSync(NAT_LAB_SCRIPT, ["down", "--id", id], { stdio: "ignore" });
      } catch {
        // Best effort at exit; `nat-lab.sh down --id ID` clears what is left.
      }
    }
  });
}

function upArguments(id: string, options: NatLabOptions): string[] {
  const args = ["up", "--id", id, "--host-nat", options.hostNat, "--client-nat", options.clientNat];
  if (options.shape !== undefined) {
    const { delayMs, rateMbit, loss = 0 } = options.shape;
    args.push("--delay-ms", String(delayMs), "--rate-mbit", String(rateMbit), "--loss", String(loss));
  }
  return args;
}

function parseUpOutput(output: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of output.split("\n")) {
    const equals = line.indexOf("=");
    if (equals > 0) values.set(line.slice(0, equals), line.slice(equals + 1));
  }
  return values;
}

const ROLES: readonly NatLabRole[] = ["core", "relay", "host-router", "client-router", "host", "client"];

export async function openNatLab(options: NatLabOptions): Promise<NatLab> {
  const id = randomBytes(3).toString("hex");
  installExitHook();
  open.add(id);
  let output: string;
  try {
    output = (await execFileAsync(NAT_LAB_SCRIPT, upArguments(id, options))).stdout;
  } catch (error) {
    open.delete(id);
    await execFileAsync(NAT_LAB_SCRIPT, ["down", "--id", id]).catch(() => undefined);
    throw error;
  }
  const values = parseUpOutput(output);
  const lookup = (key: string): string => {
    const value = values.get(key);
    if (value === undefined) throw new Error(`nat-lab.sh up printed no ${key}`);
    return value;
  };
  const namespaces = Object.fromEntries(ROLES.map((role) => [role, lookup(`ns.${role}`)])) as Record<
    NatLabRole,
    string
  >;
  const addresses = Object.fromEntries(
    ROLES.filter((role) => role !== "core").map((role) => [role, lookup(`addr.${role}`)]),
  ) as Record<Exclude<NatLabRole, "core">, string>;
  let closing: Promise<void> | undefined;
  const wrapper = (role: NatLabRole): string[] => ["ip", "netns", "exec", namespaces[role]];
  return {
    id,
    namespaces,
    addresses,
    wrapper,
    spawn(role, command, args, spawnOptions = {}) {
      return spawn("ip", ["netns", "exec", namespaces[role], command, ...args], spawnOptions);
    },
    async run(role, command, args) {
      return (await execFileAsync("ip", ["netns", "exec", namespaces[role], command, ...args])).stdout;
    },
    close() {
      closing ??= execFileAsync(NAT_LAB_SCRIPT, ["down", "--id", id]).then(() => {
        open.delete(id);
      });
      return closing;
    },
  };
}

/** Runs `body` with a fresh lab, torn down afterwards whatever happens. */
export async function withNatLab<T>(options: NatLabOptions, body: (lab: NatLab) => Promise<T>): Promise<T> {
  const lab = await openNatLab(options);
  try {
    return await body(lab);
  } finally {
    await lab.close();
  }
}
