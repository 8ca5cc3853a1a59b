/**
 * How long a pull takes to give up, with a clear error, where its host is gone, stalled or
 * unreachable: each time against the limit a user is promised (the idle timeout and the retry
 * wait it implies). And the host's side: how long it keeps connections that never handshake.
 */
import { once } from "node:events";
import { readdir } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { parseLink } from "../../src/transport/link.js";
import { type CommandUsage, cappedCommand, measureCommand } from "../lib/measure.js";
import { ensureRandomFile, type Payload } from "../lib/payload.js";
import { makeTempDir, waitUntil } from "../lib/processes.js";
import { figure } from "../lib/stats.js";
import { startTeleportHost, type TeleportHost, teleportPullCommand } from "../lib/teleport.js";
import { commandFailure, errorMessage, type RoundEntry, runRounds } from "../lib/transfer.js";
import type { BenchContext, Benchmark, BenchOutcome, Check, Figure, Ratio } from "../lib/types.js";

const MiB = 1024 * 1024;
/** A pull still running after this has hung: the run fails instead of stalling the suite. */
const RUN_CAP_SECONDS = 120;

interface Scenario {
  name: string;
  /** Seconds the pull may take, from the moment the host fails it, to exit with its error. */
  limitSeconds: number;
  /** The error the pull must exit with. */
  expectedError: RegExp;
  /** Options after `pull LINK DEST --no-progress`. */
  pullArgs: readonly string[];
  /** `teleport host` options. */
  hostArgs: readonly string[];
  /** What befalls the host, and when: before the pull (it is gone) or once the pull is writing. */
  fault: "stopped before" | "SIGKILL mid-pull" | "SIGSTOP mid-pull" | "none";
}

const CONNECTION = /TELEPORT_ERR_CONNECTION/;
const CONNECTION_OR_TIMEOUT = /TELEPORT_ERR_(CONNECTION|TIMEOUT)/;

/** The limits are those the e2e tests held these pulls to (faults, transport selection, stream pool). */
const SCENARIOS: readonly Scenario[] = [
  scenario("host not running", 5, CONNECTION, [], "stopped before"),
  scenario("host not running, --timeout 2", 10, CONNECTION_OR_TIMEOUT, ["--timeout", "2"], "stopped before"),
  scenario(
    "--transport quic to a host without QUIC, --timeout 2",
    10,
    CONNECTION_OR_TIMEOUT,
    ["--transport", "quic", "--timeout", "2"],
    "none",
    ["--no-quic"],
  ),
  scenario(
    "host killed mid-pull, --retries 1",
    30,
    CONNECTION_OR_TIMEOUT,
    ["--retries", "1"],
    "SIGKILL mid-pull",
  ),
  scenario(
    "host stalled mid-pull, --timeout 1.5 --retries 1",
    10,
    /TELEPORT_ERR_TIMEOUT/,
    ["--timeout", "1.5", "--retries", "1"],
    "SIGSTOP mid-pull",
  ),
];

function scenario(
  name: string,
  limitSeconds: number,
  expectedError: RegExp,
  pullArgs: readonly string[],
  fault: Scenario["fault"],
  hostArgs: readonly string[] = [],
): Scenario {
  return { name, limitSeconds, expectedError, pullArgs, fault, hostArgs };
}

interface Measured extends RoundEntry {
  scenario: Scenario;
  seconds: number[];
}

export const giveUp: Benchmark = {
  name: "give_up_time",
  title: "a pull giving up on a host gone, killed, stalled or without the transport asked for",
  target: "every pull exits with its error within its limit (5 to 30 s)",
  quick: false,
  run: measureGiveUp,
};

async function measureGiveUp(context: BenchContext): Promise<BenchOutcome> {
  // Large enough that a pull on loopback is still writing when its host is failed.
  const payload = await ensureRandomFile(join(context.workDir, "file-1024m", "file.bin"), 1024 * MiB);
  const measured: Measured[] = SCENARIOS.map((entry) => ({
    name: entry.name,
    failure: null,
    scenario: entry,
    seconds: [],
  }));
  await runRounds(context, measured, async (entry, round, label) => {
    const seconds = await timeToGiveUp(context, payload, entry.scenario);
    context.log(`${label}: ${seconds.toFixed(2)} s`);
    if (round > 0) entry.seconds.push(seconds);
  });
  return giveUpOutcome(measured);
}

/** One pull failed as `scenario` says: seconds from the fault to the pull's exit. */
async function timeToGiveUp(context: BenchContext, payload: Payload, scenario: Scenario): Promise<number> {
  const scratch = makeTempDir("give-up");
  const host = await startTeleportHost(context.cli, payload.root, { hostArgs: scenario.hostArgs });
  try {
    if (scenario.fault === "stopped before") await host.stop();
    const dest = join(scratch.path, "dest");
    const started = performance.now();
    const pullOptions = ["--path", payload.name, "--no-progress", ...scenario.pullArgs];
    const home = join(scratch.path, "client-home");
    const pullCommand = teleportPullCommand(context.cli, host.link, dest, home, pullOptions);
    const pull = measureCommand(cappedCommand(pullCommand, RUN_CAP_SECONDS));
    const faultAt =
      scenario.fault === "SIGKILL mid-pull" || scenario.fault === "SIGSTOP mid-pull"
        ? await failMidPull(host, scenario.fault === "SIGKILL mid-pull" ? "SIGKILL" : "SIGSTOP", dest, pull)
        : started;
    const usage = await pull;
    if (usage.exitCode === 124) throw commandFailure(usage, host.server, RUN_CAP_SECONDS);
    if (usage.exitCode === 0 || !scenario.expectedError.test(usage.stderr)) {
      throw new Error(
        `expected a pull failing with ${scenario.expectedError}, got exit ${usage.exitCode}: ${usage.stderr.trim().slice(-300)}`,
      );
    }
    return (started - faultAt) / 1000 + usage.wallSeconds;
  } finally {
    signal(host.server.pid, "SIGCONT"); // a stalled host must run again to stop
    await host.stop();
    scratch.remove();
  }
}

/** Waits for the pull to write its first temp file, then signals the host; returns when. */
async function failMidPull(
  host: TeleportHost,
  fault: "SIGKILL" | "SIGSTOP",
  dest: string,
  pull: Promise<CommandUsage>,
): Promise<number> {
  let pullEnded = false;
  void pull.finally(() => {
    pullEnded = true;
  });
  await waitUntil(
    "the pull to start writing",
    async () => {
      if (pullEnded) throw new Error("the pull ended before its host could be failed mid-pull");
      const names = await readdir(dest, { recursive: true }).catch(() => [] as string[]);
      return names.some((name) => name.endsWith(".teleport-part"));
    },
    { timeoutMs: 30_000, server: host.server },
  );
  signal(host.server.pid, fault);
  return performance.now();
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // ESRCH: already gone (killed, or stopped by the scenario).
  }
}

function giveUpOutcome(measured: readonly Measured[]): BenchOutcome {
  const figures: Figure[] = [];
  const ratios: Ratio[] = [];
  const checks: Check[] = [];
  const notes: string[] = [];
  for (const { scenario, seconds, failure } of measured) {
    if (failure !== null) notes.push(`${scenario.name}: failed: ${failure}`);
    if (seconds.length === 0) continue;
    const result = figure(
      { tool: `teleport, ${scenario.name}`, role: "subject", metric: "seconds", better: "lower" },
      seconds,
    );
    figures.push({ ...result, details: { limitSeconds: scenario.limitSeconds, fault: scenario.fault } });
    ratios.push({
      name: `limit / time to give up, ${scenario.name}`,
      value: scenario.limitSeconds / result.median,
    });
    checks.push({
      description: `${scenario.name}: slowest ${result.max.toFixed(1)} s (< ${scenario.limitSeconds} s)`,
      met: result.max < scenario.limitSeconds,
    });
  }
  const failed = measured.filter((entry) => entry.failure !== null);
  if (failed.length === measured.length)
    return { status: "failed", reason: failed.map((entry) => `${entry.name}: ${entry.failure}`).join("; ") };
  // A scenario that failed to give up with its error is a missed target, not a missing figure.
  for (const entry of failed) checks.push({ description: `${entry.name}: ${entry.failure}`, met: false });
  return { status: "ok", figures, ratios, checks, notes };
}

/** The hostile-client test's bound: five handshake timeouts (HANDSHAKE_TIMEOUT_MS, src/transport/tcp.ts). */
const SILENT_DROP_LIMIT_SECONDS = 50;
const SILENT_CONNECTIONS = 10;

/** Connections that connect and send nothing hold a descriptor each until the host drops them. */
export const silentConnectionDrop: Benchmark = {
  name: "silent_connection_drop",
  title: `${SILENT_CONNECTIONS} connections that never start a handshake, dropped by the host`,
  target: `all dropped within five handshake timeouts (${SILENT_DROP_LIMIT_SECONDS} s)`,
  quick: false,
  run: async (context) => {
    const payload = await ensureRandomFile(join(context.workDir, "file-128m", "file.bin"), 128 * MiB);
    const host = await startTeleportHost(context.cli, payload.root);
    const samples: number[] = [];
    try {
      const { host: address, port } = parseLink(host.link);
      for (let run = 1; run <= context.runs; run++) {
        samples.push(await timeToDropSilent(address, port));
        context.log(`run ${run}/${context.runs}: dropped after ${samples.at(-1)?.toFixed(2)} s`);
      }
    } catch (error) {
      return { status: "failed", reason: errorMessage(error) };
    } finally {
      await host.stop();
    }
    const result = figure(
      { tool: "teleport host", role: "subject", metric: "seconds", better: "lower" },
      samples,
    );
    return {
      status: "ok",
      figures: [result],
      ratios: [
        { name: "limit / time to drop silent connections", value: SILENT_DROP_LIMIT_SECONDS / result.median },
      ],
      checks: [
        {
          description: `slowest ${result.max.toFixed(1)} s (< ${SILENT_DROP_LIMIT_SECONDS} s)`,
          met: result.max < SILENT_DROP_LIMIT_SECONDS,
        },
      ],
    };
  },
};

/** Seconds until the host has closed every one of SILENT_CONNECTIONS silent connections. */
async function timeToDropSilent(address: string, port: number): Promise<number> {
  const started = performance.now();
  const sockets = Array.from({ length: SILENT_CONNECTIONS }, () => connect(port, address));
  const closed = sockets.map((socket) => {
    socket.on("error", () => {}); // a reset is how some are dropped
    return once(socket, "close");
  });
  const cap = AbortSignal.timeout(2 * SILENT_DROP_LIMIT_SECONDS * 1000);
  try {
    await Promise.race([
      Promise.all(closed),
      once(cap, "abort").then(() => {
        throw new Error(`silent connections still open after ${2 * SILENT_DROP_LIMIT_SECONDS} s`);
      }),
    ]);
    return (performance.now() - started) / 1000;
  } finally {
    for (const socket of sockets) socket.destroy();
  }
}
