/**
 * Reaching a host behind NAT, in the NAT lab (bench/nat-lab.sh) with both routers' public links
 * shaped to 100 Mbit/s and 50 ms RTT host to client: one file pulled direct (the host behind a
 * full-cone NAT, its public address dialled), through `teleport relay` (the client behind a
 * symmetric NAT, so no punch can work) and punched (two cone NATs: the pull moves off the relay),
 * each checked by the path its bytes took (`--json`'s bytes by path); the relay's throughput over the
 * direct path's (target >= 0.80); and `teleport receive CODE` of a tiny file through the relay's
 * mailbox, process start to exit (its first byte at the latest). Root, network namespaces,
 * nftables and netsim's forwarder, or skipped saying which is missing.
 */
import { type ChildProcess, execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { nativeUdp } from "../../src/platform/native.js";
import { quicAvailable } from "../../src/transport/quic.js";
import { type NatKind, type NatLab, openNatLab, whyNoNatLab } from "../../test/helpers/nat-lab.js";
import { assertIdenticalCopy, ensureRandomFile, type Payload } from "../lib/payload.js";
import { makeTempDir, type TempDir, waitUntil } from "../lib/processes.js";
import { figure, runsFigure } from "../lib/stats.js";
import { type PullReport, parsePullReport } from "../lib/teleport.js";
import type { BenchContext, Benchmark, BenchOutcome, Check, Figure, Ratio } from "../lib/types.js";

const execFileAsync = promisify(execFile);

/** Each router's public link: 12.5 ms each way, so 4 x 12.5 = 50 ms host to client and back. */
const SHAPE = { delayMs: 12.5, rateMbit: 100 };
const RTT_SECONDS = 0.05;
const PAYLOAD_BYTES = 128 * 1024 * 1024;
const RELAY_TARGET = 0.8;
/** `receive`'s budget for a tiny file: 1 s, plus 10 round trips (mailbox, exchange, TLS, pull). */
const RECEIVE_BUDGET_SECONDS = 1 + 10 * RTT_SECONDS;

type PathKind = "direct" | "relay" | "punched";

interface PathSetup {
  path: PathKind;
  hostNat: NatKind;
  clientNat: NatKind;
}

const SETUPS: readonly PathSetup[] = [
  { path: "direct", hostNat: "full-cone", clientNat: "cone" },
  { path: "relay", hostNat: "cone", clientNat: "symmetric" },
  { path: "punched", hostNat: "cone", clientNat: "cone" },
];

/** `receive` goes through the relay's mailbox: NATs that no LAN discovery or punch crosses. */
const RECEIVE_SETUP: PathSetup = { path: "relay", hostNat: "cone", clientNat: "symmetric" };

export const reach: Benchmark = {
  name: "reach_100m_50ms",
  title: "pull across NATs at 100 Mbit/s, 50 ms RTT: direct vs relay vs punched; receive CODE",
  target: "relay >= 80% of direct; receive of a tiny file < 1 s + 10 RTT",
  quick: false,
  run: runReach,
};

async function runReach(context: BenchContext): Promise<BenchOutcome> {
  const missing = whyNoNatLab({ shaped: true });
  if (missing !== null) return { status: "skipped", reason: missing };
  const payload = await ensureRandomFile(join(context.workDir, "reach", "payload.bin"), PAYLOAD_BYTES);
  const figures: Figure[] = [];
  const notes: string[] = [];
  const byPath = new Map<PathKind, number>();
  for (const setup of SETUPS) {
    if (setup.path === "punched" && (!quicAvailable || nativeUdp === undefined)) {
      notes.push("punched: skipped (punching needs QUIC and the native addon)");
      continue;
    }
    context.log(`reach: ${setup.path} (host NAT ${setup.hostNat}, client NAT ${setup.clientNat})`);
    const pathFigure = await inLab(context, setup, (run) => measurePath(run, setup, payload, notes));
    figures.push(pathFigure);
    byPath.set(setup.path, pathFigure.median);
  }
  context.log("reach: receive CODE of a tiny file through the relay's mailbox");
  const receiveFigure = await inLab(context, RECEIVE_SETUP, measureReceive);
  figures.push(receiveFigure);
  return { status: "ok", figures, ...judge(byPath, receiveFigure), notes };
}

function judge(byPath: Map<PathKind, number>, receive: Figure): { ratios: Ratio[]; checks: Check[] } {
  const direct = byPath.get("direct") ?? Number.NaN;
  const ratios: Ratio[] = [];
  for (const path of ["relay", "punched"] as const) {
    const rate = byPath.get(path);
    if (rate !== undefined) ratios.push({ name: `${path} vs direct`, value: rate / direct });
  }
  const relayRatio = ratios.find((ratio) => ratio.name === "relay vs direct")?.value ?? 0;
  return {
    ratios,
    checks: [
      {
        description: `relay path >= ${RELAY_TARGET * 100}% of direct (${(relayRatio * 100).toFixed(0)}%)`,
        met: relayRatio >= RELAY_TARGET,
      },
      {
        description: `receive CODE of a tiny file < ${RECEIVE_BUDGET_SECONDS.toFixed(2)} s (${receive.median.toFixed(2)} s)`,
        met: receive.median < RECEIVE_BUDGET_SECONDS,
      },
    ],
  };
}

/** A lab being measured: its namespaces, a scratch folder, and what runs in it until it closes. */
interface LabRun {
  context: BenchContext;
  lab: NatLab;
  scratch: TempDir;
  running: ChildProcess[];
}

async function inLab<T>(
  context: BenchContext,
  setup: PathSetup,
  body: (run: LabRun) => Promise<T>,
): Promise<T> {
  const lab = await openNatLab({ hostNat: setup.hostNat, clientNat: setup.clientNat, shape: SHAPE });
  const run: LabRun = { context, lab, scratch: makeTempDir(`reach-${setup.path}`, "/dev/shm"), running: [] };
  try {
    return await body(run);
  } finally {
    for (const child of run.running) child.kill("SIGKILL");
    run.scratch.remove();
    await lab.close();
  }
}

interface Cli {
  firstLine(what: string): Promise<string>;
  exited(): boolean;
  stderr(): string;
}

/** `teleport ARGS` in `role`'s namespace with its own TELEPORT_HOME, kept running until the lab closes. */
function startCli(run: LabRun, role: "relay" | "host", args: readonly string[]): Cli {
  const home = join(run.scratch.path, `${role}-home-${run.running.length}`);
  const child = run.lab.spawn(role, "env", [
    `TELEPORT_HOME=${home}`,
    process.execPath,
    run.context.cli,
    ...args,
  ]);
  run.running.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString("utf8");
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString("utf8")).slice(-4000);
  });
  return {
    firstLine: async (what) => {
      await waitUntil(what, async () => stdout.includes("\n") || child.exitCode !== null, {
        timeoutMs: 30_000,
      });
      if (!stdout.includes("\n")) throw new Error(`teleport ${args[0]} exited before ${what}: ${stderr}`);
      return (stdout.split("\n")[0] ?? "").trim();
    },
    exited: () => child.exitCode !== null,
    stderr: () => stderr,
  };
}

/** `teleport ARGS` in the client's namespace to completion, with a fresh TELEPORT_HOME; its stdout. */
async function runClient(run: LabRun, args: readonly string[]): Promise<string> {
  const home = join(run.scratch.path, "client-home");
  const env = `TELEPORT_HOME=${home}`;
  try {
    const { stdout } = await execFileAsync(
      "ip",
      ["netns", "exec", run.lab.namespaces.client, "env", env, process.execPath, run.context.cli, ...args],
      { maxBuffer: 16 * 1024 * 1024, timeout: 300_000 },
    );
    return stdout;
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

async function startRelay(run: LabRun): Promise<string> {
  return startCli(run, "relay", ["relay", "--port", "0"]).firstLine("teleport relay's address");
}

/** `teleport host` of the payload's folder; its link, rewritten for `setup`'s path. */
async function startHost(run: LabRun, setup: PathSetup, payload: Payload): Promise<string> {
  const linkFile = join(run.scratch.path, "link");
  const relayArgs = setup.path === "direct" ? [] : ["--relay", await startRelay(run)];
  const host = startCli(run, "host", [
    "host",
    payload.root,
    "--port",
    "0",
    "--link-file",
    linkFile,
    ...relayArgs,
  ]);
  const readLink = () =>
    existsSync(linkFile) ? (readFileSync(linkFile, "utf8").split("\n")[0] ?? "").trim() : "";
  await waitUntil("teleport host's link", async () => readLink() !== "" || host.exited(), {
    timeoutMs: 120_000,
  });
  if (readLink() === "") throw new Error(`teleport host wrote no link: ${host.stderr()}`);
  if (setup.path !== "direct") return readLink();
  // The full-cone NAT forwards its public address's ports to the host: dial that, as a user would.
  const link = new URL(readLink());
  link.hostname = run.lab.addresses["host-router"];
  return link.toString();
}

/** `notes` gets a line when `--json`'s top-level path disagrees with the bytes by path. */
async function measurePath(
  run: LabRun,
  setup: PathSetup,
  payload: Payload,
  notes: string[],
): Promise<Figure> {
  const { context } = run;
  const link = await startHost(run, setup, payload);
  const reports: PullReport[] = [];
  for (let round = 0; round <= context.runs; round++) {
    const dest = join(run.scratch.path, `dest-${round}`);
    const report = parsePullReport(
      await runClient(run, ["pull", link, dest, "--json", "--path", payload.name]),
    );
    await assertIdenticalCopy(join(dest, payload.name), payload);
    rmSync(dest, { recursive: true, force: true });
    const path = pathOf(report);
    if (path !== setup.path)
      throw new Error(`a ${setup.path} pull went by ${path}: ${JSON.stringify(report)}`);
    const mislabel = `${setup.path}: --json says path "${report.path}"`;
    if (report.path !== path && !notes.includes(mislabel)) notes.push(mislabel);
    context.log(
      `reach: ${setup.path} run ${round}: ${(report.bytes / 1e6 / report.seconds).toFixed(1)} MB/s`,
    );
    if (round > 0) reports.push(report); // round 0 warms up
  }
  const samples = reports.map((report) => report.bytes / 1e6 / report.seconds);
  const pathFigure = runsFigure(
    {
      tool: `teleport ${setup.path}`,
      role: setup.path === "direct" ? "limit" : "subject",
      metric: "MB/s",
      better: "higher",
    },
    reports.map((report) => ({
      clientCpuSeconds: report.cpuSeconds,
      clientPeakRssBytes: report.peakRssBytes,
    })),
    samples,
  );
  return { ...pathFigure, megabytesPerSecond: pathFigure.median };
}

/**
 * The path that carried most chunk bytes, by the stream pool's own count: the summary's top-level
 * `path` does not know the punched path (it says "direct" for it), which measurePath notes.
 */
function pathOf(report: PullReport): string {
  const byPath = report.streamPool?.bytesByPath ?? report.bytesByPath;
  const [path] = Object.entries(byPath).reduce((most, entry) => (entry[1] > most[1] ? entry : most));
  return path;
}

/** A fresh `send` per run (a code works once); `receive` timed from spawn to exit. */
async function measureReceive(run: LabRun): Promise<Figure> {
  const { context } = run;
  const relay = await startRelay(run);
  const source = join(run.scratch.path, "note.txt");
  writeFileSync(source, "a tiny file: its first byte is its last\n");
  const samples: number[] = [];
  for (let round = 0; round <= context.runs; round++) {
    const send = startCli(run, "host", ["send", source, "--relay", relay]);
    const code = await send.firstLine("teleport send's code");
    const dest = join(run.scratch.path, `received-${round}`);
    mkdirSync(dest);
    const started = performance.now();
    await runClient(run, ["receive", code, dest, "--relay", relay, "--json"]);
    const seconds = (performance.now() - started) / 1000;
    if (readFileSync(join(dest, "note.txt"), "utf8") !== readFileSync(source, "utf8"))
      throw new Error("receive wrote another file than was sent");
    context.log(`reach: receive run ${round}: ${seconds.toFixed(2)} s`);
    if (round > 0) samples.push(seconds);
  }
  return figure(
    { tool: "teleport receive CODE (tiny file)", role: "subject", metric: "seconds", better: "lower" },
    samples,
  );
}
