/**
 * Pulls over an emulated WAN (../shared/tools/netsim, 50 ms RTT): teleport beside iperf3 (the
 * link's practical limit, one stream and eight) and an rsync daemon (one plain TCP stream), on
 * 100 Mbit/s and 1 Gbit/s links, with and without 0.1% loss, and teleport's throughput per
 * --streams count. The servers run in netsim host b, every client in host a.
 *
 * Throughput is the figure, not time: a single loss-bound stream moves ~9 Mbit/s where eight
 * move ~75, so one payload cannot suit every tool. Each tool's warm-up picks, from a ladder of
 * random files, the smallest that lasts RUN_SECONDS at the rate the warm-up saw; its timed runs
 * pull that file (a larger one after a run too short to count). A run's throughput is payload
 * bits over the pull command's wall time, so it includes what a user waits for: process start
 * (and netsim's, ~0.1 s), handshakes and TCP slow start. teleport's own timing is in the details.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import {
  type CommandSpec,
  type CommandUsage,
  flushDirtyPages,
  measureCommand,
  startServerMeasurement,
  warmPageCache,
} from "../lib/measure.js";
import {
  bringUpLink,
  describeLink,
  findNetsim,
  type LinkSettings,
  type NetsimLink,
  tcpGoodputMbit,
  whyNoNetsim,
} from "../lib/netsim.js";
import { assertIdenticalCopy, ensureRandomFile, ensureRandomTree, type Payload } from "../lib/payload.js";
import { whyUnavailable, writeRsyncdConfig } from "../lib/peers.js";
import { makeTempDir, type ServerProcess, treeScratchParent, waitUntil } from "../lib/processes.js";
import { costOfRuns, figure } from "../lib/stats.js";
import { parsePullReport, readLinkFile } from "../lib/teleport.js";
import type { BenchContext, Benchmark, BenchOutcome, Check, Figure, Ratio, Series } from "../lib/types.js";
import { sourceTree } from "./compression.js";

const MiB = 1024 * 1024;
/**
 * The payload ladder, in MiB: 512 MiB lasts ~4.5 s at 1 Gbit/s, 16 MiB ~14 s on one reno stream
 * at 0.1% loss. Nothing smaller: 8 MiB (~6 loss events) left a lossy run to slow-start luck;
 * one tool's runs on it ranged from 13 to 41 Mbit/s.
 */
const PAYLOAD_MIB = [16, 32, 64, 128, 256, 512] as const;
/** A timed run should last at least this long at the rate its warm-up measured. */
const RUN_SECONDS = 5;
/**
 * A shorter run measures startup and slow start, not throughput; on a lossy link, slow-start
 * luck: 16 MiB over two reno streams once took 1.8 s (73 Mbit/s) where its warm-up took 7 s. Such
 * a run, warm-up or timed, is repeated with the next larger payload. One rung, not the rung its
 * rate calls for: that rate is the luck, and an rsync re-run sized by it took 61 s.
 */
const MIN_RUN_SECONDS = 3;
/** From 16 MiB, enough to reach 256 MiB: a tool that fills the lossy link warms up to its payload. */
const MAX_WARMUPS = 4;
/** A run still going after this is ended and counts as failed: hung, not slow. */
const RUN_CAP_SECONDS = 180;
const IPERF_SECONDS = 5;
const IPERF_WARMUP_SECONDS = 2;
/** Seconds of iperf3's slow start left out of its figure: it stands for the link, not a transfer. */
const IPERF_OMIT_SECONDS = 1;
/** Ports inside host b, a namespace of its own: nothing else listens there. */
const IPERF_PORT = 5201;
const RSYNC_PORT = 873;
const PACKAGES = ["iperf3", "rsync", "time"] as const;

const ONE_GBIT_50MS: LinkSettings = { rateMbit: 1000, delayMs: 25, loss: 0 };
const LOSSY_RENO: LinkSettings = { ...ONE_GBIT_50MS, loss: 0.001, congestionControl: "reno" };

// ---------------------------------------------------------------- payloads

interface LadderFile {
  name: string;
  payload: Payload;
}

interface PayloadLadder {
  dir: string;
  files: readonly LadderFile[];
}

const ladders = new Map<string, Promise<PayloadLadder>>();

/** All rungs, made once per work dir (1008 MiB) and hashed once per process. */
function ensurePayloadLadder(workDir: string): Promise<PayloadLadder> {
  const dir = join(workDir, "wan-payloads");
  let ladder = ladders.get(dir);
  if (ladder === undefined) {
    ladder = (async () => {
      const files: LadderFile[] = [];
      for (const mib of PAYLOAD_MIB) {
        const path = join(dir, `random-${mib}MiB.bin`);
        files.push({ name: basename(path), payload: await ensureRandomFile(path, mib * MiB) });
      }
      return { dir, files };
    })();
    ladder.catch(() => ladders.delete(dir));
    ladders.set(dir, ladder);
  }
  return ladder;
}

/** The smallest rung that lasts RUN_SECONDS at `mbit`, or the largest. */
function rungFor(ladder: PayloadLadder, mbit: number): LadderFile {
  const fitting = ladder.files.find((file) => (file.payload.bytes * 8) / (mbit * 1e6) >= RUN_SECONDS);
  const largest = ladder.files.at(-1);
  if (largest === undefined) throw new Error("empty payload ladder");
  return fitting ?? largest;
}

/**
 * What one TCP stream gets: the link's goodput, or under loss with reno what Mathis et al. give,
 * MSS/RTT x 1.22/sqrt(p). Every tool's first warm-up is sized for this: a warm-up that ends too
 * soon grows the payload, while one sized for N streams' worth took 63 s for 64 streams that got
 * no more than 16 did.
 */
function singleStreamMbit(settings: LinkSettings): number {
  const goodput = tcpGoodputMbit(settings);
  // BBR does not back off on random loss; reno (and cubic) do.
  if (settings.loss === 0 || settings.congestionControl !== "reno") return goodput;
  const rttSeconds = (2 * settings.delayMs) / 1000;
  const perStream = (((1448 * 8) / rttSeconds) * 1.22) / Math.sqrt(settings.loss) / 1e6;
  return Math.min(goodput, perStream);
}

// ---------------------------------------------------------------- contenders

interface Sample {
  mbit: number;
  wallSeconds: number;
  clientCpuSeconds: number | null;
  clientPeakRssBytes: number | null;
  serverCpuSeconds: number | null;
  serverPeakRssBytes: number | null;
  details: Record<string, unknown>;
}

/** A tool measured on the link: one warm-up (which may take a few runs), then timed runs. */
interface Contender {
  tool: string;
  role: Figure["role"];
  /** Moves a payload, so MB/s means something. */
  transfer: boolean;
  warmUp(): Promise<Sample[]>;
  measure(): Promise<Sample>;
  details(): Record<string, unknown>;
}

/** A copy of one ladder file into a fresh `destDir`, measured and verified. */
interface Transfer {
  tool: string;
  role: Figure["role"];
  /** Mbit/s expected before any run: sizes the first warm-up. */
  expectedMbit: number;
  details: Record<string, unknown>;
  run(file: LadderFile): Promise<Sample>;
}

/**
 * Picks the transfer's payload during its warm-up: the rung for the rate the warm-up saw. A run
 * too short to count, warm-up or timed, is repeated one rung up, and later runs keep that rung.
 */
function sizedTransfer(transfer: Transfer, ladder: PayloadLadder): Contender {
  let file = rungFor(ladder, transfer.expectedMbit);
  const largerPayload = (sample: Sample): LadderFile | null => {
    if (sample.wallSeconds >= MIN_RUN_SECONDS) return null;
    return ladder.files[ladder.files.indexOf(file) + 1] ?? null;
  };
  return {
    tool: transfer.tool,
    role: transfer.role,
    transfer: true,
    warmUp: async () => {
      const samples: Sample[] = [];
      for (let attempt = 0; attempt < MAX_WARMUPS; attempt++) {
        const sample = await transfer.run(file);
        samples.push(sample);
        const larger = largerPayload(sample);
        file = larger ?? rungFor(ladder, sample.mbit);
        if (larger === null) break;
      }
      return samples;
    },
    measure: async () => {
      const sample = await transfer.run(file);
      const larger = largerPayload(sample);
      if (larger === null) return sample;
      file = larger;
      const rerun = await transfer.run(file);
      rerun.details.replacedShortRun = {
        mbit: sample.mbit,
        wallSeconds: sample.wallSeconds,
        ...sample.details,
      };
      return rerun;
    },
    details: () => ({ ...transfer.details, payloadBytes: file.payload.bytes }),
  };
}

/** The servers of one benchmark on one link, and what the clients need to reach them. */
interface WanSession {
  context: BenchContext;
  link: NetsimLink;
  ladder: PayloadLadder;
  teleportLink: string;
  teleportHost: ServerProcess;
  /** More teleport hosts of the same folder, started with other options, by name. */
  variants: Map<string, TeleportHost>;
  rsyncDaemon: { server: ServerProcess; version: string } | null;
  iperfServer: ServerProcess | null;
  /** Where each run's copy lands and each pull's TELEPORT_HOME is made. */
  scratch: string;
  notes: string[];
}

function teleportContender(session: WanSession, streams: number | "auto"): Contender {
  const streamArgs = streams === "auto" ? [] : ["--streams", String(streams)];
  return sizedTransfer(
    {
      tool: streams === "auto" ? "teleport" : `teleport --streams ${streams}`,
      role: "subject",
      expectedMbit: singleStreamMbit(session.link.settings),
      details: { streams },
      run: (file) => pullWithTeleport(session, file, streamArgs),
    },
    session.ladder,
  );
}

/** One cold pull of `file` (a file or folder in the shared folder) in host a. */
async function pullWithTeleport(
  session: WanSession,
  file: LadderFile,
  extraArgs: readonly string[] = [],
  host: TeleportHost = { link: session.teleportLink, server: session.teleportHost },
): Promise<Sample> {
  const { context, link } = session;
  const destDir = destinationFor(session, file);
  // A fresh TELEPORT_HOME per run: a cold pull, never a re-pull.
  const home = freshDir(session, "home");
  const pullArgs = [context.cli, "pull", host.link, destDir, "--json", "--path", file.name];
  const command = cappedCommand(link, process.execPath, [...pullArgs, ...extraArgs], {
    ...process.env,
    TELEPORT_HOME: home,
  });
  try {
    const { sample, usage } = await timedCopy(command, host.server, file, destDir);
    const report = parsePullReport(usage.stdout);
    sample.details.reportedMbit = (report.bytes * 8) / report.seconds / 1e6;
    sample.details.streamsUsed = streamCount(usage.stdout);
    sample.details.tuning = tuningPath(usage.stdout);
    return sample;
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/** From teleport's JSON report: the most data streams the pull had open at once. */
function streamCount(stdout: string): number | null {
  const report = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as {
    streamPool?: { peakStreams?: unknown } | null;
  };
  const peak = report.streamPool?.peakStreams;
  return typeof peak === "number" ? peak : null;
}

/** From teleport's JSON report: the stream counts the tuner went through, in order. */
function tuningPath(stdout: string): number[] {
  const report = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as {
    streamPool?: { tuning?: { streams: number }[] } | null;
  };
  return report.streamPool?.tuning?.map((step) => step.streams) ?? [];
}

function rsyncContender(session: WanSession, daemon: { server: ServerProcess; version: string }): Contender {
  return sizedTransfer(
    {
      tool: "rsync-daemon",
      role: "peer",
      expectedMbit: singleStreamMbit(session.link.settings),
      details: { version: daemon.version, streams: 1 },
      run: (file) => pullWithRsync(session, daemon.server, file),
    },
    session.ladder,
  );
}

async function pullWithRsync(
  session: WanSession,
  daemon: ServerProcess,
  file: LadderFile,
  extraArgs: readonly string[] = [],
): Promise<Sample> {
  const destDir = destinationFor(session, file);
  const source = `rsync://${session.link.addresses.b}:${RSYNC_PORT}/bench/${file.name}`;
  const recursive = file.payload.files > 1 ? ["-a"] : [];
  const command = cappedCommand(session.link, "rsync", [...recursive, ...extraArgs, source, `${destDir}/`]);
  return (await timedCopy(command, daemon, file, destDir)).sample;
}

/** Runs `command` (a pull into `destDir`) against `server`, checks the copy, then removes it. */
async function timedCopy(
  command: CommandSpec,
  server: ServerProcess,
  file: LadderFile,
  destDir: string,
): Promise<{ sample: Sample; usage: CommandUsage }> {
  try {
    if (file.payload.files === 1) await warmPageCache(file.payload.path);
    flushDirtyPages();
    const measurement = await startServerMeasurement(server.pid);
    const usage = await measureCommand(command);
    const serverCost = await measurement.finish();
    if (usage.exitCode !== 0) throw commandFailure(usage, server);
    await assertIdenticalCopy(join(destDir, file.name), file.payload);
    const sample: Sample = {
      mbit: (file.payload.bytes * 8) / usage.wallSeconds / 1e6,
      wallSeconds: usage.wallSeconds,
      clientCpuSeconds: usage.cpuSeconds,
      clientPeakRssBytes: usage.peakRssBytes,
      serverCpuSeconds: serverCost.cpuSeconds,
      serverPeakRssBytes: serverCost.peakRssBytes,
      details: { payloadBytes: file.payload.bytes },
    };
    return { sample, usage };
  } finally {
    rmSync(destDir, { recursive: true, force: true });
  }
}

function iperfContender(session: WanSession, parallel: number): Contender {
  const { link } = session;
  const run = async (seconds: number): Promise<Sample> => {
    // -R: host b sends, as in a pull.
    const args = ["-c", link.addresses.b, "-p", String(IPERF_PORT), "-R", "-t", String(seconds)];
    const omit = seconds > IPERF_OMIT_SECONDS + 1 ? ["-O", String(IPERF_OMIT_SECONDS)] : [];
    const usage = await measureCommand(
      cappedCommand(link, "iperf3", [...args, ...omit, "-P", String(parallel), "--json"]),
    );
    const bitsPerSecond = iperfReceiverBitsPerSecond(usage);
    return {
      mbit: bitsPerSecond / 1e6,
      wallSeconds: usage.wallSeconds,
      clientCpuSeconds: usage.cpuSeconds,
      clientPeakRssBytes: usage.peakRssBytes,
      serverCpuSeconds: null,
      serverPeakRssBytes: null,
      details: { seconds },
    };
  };
  return {
    tool: parallel === 1 ? "iperf3" : `iperf3 -P ${parallel}`,
    role: "limit",
    transfer: false,
    warmUp: async () => [await run(IPERF_WARMUP_SECONDS)],
    measure: () => run(IPERF_SECONDS),
    details: () => ({
      streams: parallel,
      seconds: IPERF_SECONDS,
      omittedSeconds: IPERF_OMIT_SECONDS,
      what: "receiver goodput b -> a (-R), memory to memory",
    }),
  };
}

function iperfReceiverBitsPerSecond(usage: CommandUsage): number {
  let parsed: { error?: string; end?: { sum_received?: { bits_per_second?: number } } };
  try {
    parsed = JSON.parse(usage.stdout);
  } catch {
    throw commandFailure(usage, null);
  }
  const bits = parsed.end?.sum_received?.bits_per_second;
  if (usage.exitCode !== 0 || parsed.error !== undefined || typeof bits !== "number") {
    throw new Error(`iperf3 failed: ${parsed.error ?? commandFailure(usage, null).message}`);
  }
  return bits;
}

/** `command args` in host a, ended after RUN_CAP_SECONDS (exit 124) should it hang. */
function cappedCommand(
  link: NetsimLink,
  command: string,
  args: readonly string[],
  env?: NodeJS.ProcessEnv,
): CommandSpec {
  return link.command("a", "timeout", ["-k", "5", String(RUN_CAP_SECONDS), command, ...args], env);
}

function commandFailure(usage: CommandUsage, server: ServerProcess | null): Error {
  const status =
    usage.exitCode === 124
      ? `still running after ${RUN_CAP_SECONDS} s`
      : `exited with ${usage.signal ?? `code ${usage.exitCode}`}`;
  const serverLog = server === null ? "" : `\n  ${server.name} log:\n${server.logTail(10)}`;
  return new Error(`${status}: ${usage.stderr.trim().slice(-500)}${serverLog}`);
}

function freshDir(session: WanSession, prefix: string): string {
  return mkdtempSync(join(session.scratch, `${prefix}-`));
}

/** A fresh folder for a copy of `file`: a tree's goes where creating files is cheap (treeScratchParent). */
function destinationFor(session: WanSession, file: LadderFile): string {
  if (file.payload.files === 1) return freshDir(session, "dest");
  return mkdtempSync(join(treeScratchParent(file.payload.bytes), "teleport-bench-wan-dest-"));
}

// ---------------------------------------------------------------- servers in host b

interface TeleportHost {
  link: string;
  server: ServerProcess;
}

async function startTeleportHost(
  link: NetsimLink,
  cli: string,
  shareDir: string,
  dir: string,
  extraArgs: readonly string[] = [],
): Promise<TeleportHost> {
  const home = join(dir, "host-home");
  const linkFile = join(dir, "link");
  mkdirSync(home, { recursive: true });
  const server = await link.startServer(
    "b",
    ["teleport host", ...extraArgs].join(" "),
    process.execPath,
    [cli, "host", shareDir, "--port", "0", "--bind", link.addresses.b, "--link-file", linkFile, ...extraArgs],
    { logPath: join(dir, "teleport-host.log"), env: { ...process.env, TELEPORT_HOME: home } },
  );
  await waitUntil("the share link", async () => readLinkFile(linkFile) !== "", {
    timeoutMs: 120_000,
    server,
  });
  return { server, link: readLinkFile(linkFile) };
}

/** peers.ts's daemon listens on loopback only; this one listens on host b's link address. */
async function startRsyncDaemonIn(link: NetsimLink, shareDir: string, dir: string) {
  const configPath = writeRsyncdConfig(dir, shareDir);
  const server = await link.startServer(
    "b",
    "rsync daemon",
    "rsync",
    [
      "--daemon",
      "--no-detach",
      `--config=${configPath}`,
      `--port=${RSYNC_PORT}`,
      `--address=${link.addresses.b}`,
    ],
    { logPath: join(dir, "rsyncd.stdout.log") },
  );
  await waitUntil("the rsync daemon to listen", () => link.isListening("b", RSYNC_PORT), {
    timeoutMs: 10_000,
    server,
  });
  const version = await measureCommand({ command: "rsync", args: ["--version"] });
  return { server, version: version.stdout.split("\n")[0]?.trim() ?? "" };
}

async function startIperfServer(link: NetsimLink, dir: string): Promise<ServerProcess> {
  const server = await link.startServer(
    "b",
    "iperf3 server",
    "iperf3",
    ["-s", "-B", link.addresses.b, "-p", String(IPERF_PORT)],
    {
      logPath: join(dir, "iperf3-server.log"),
    },
  );
  await waitUntil("the iperf3 server to listen", () => link.isListening("b", IPERF_PORT), {
    timeoutMs: 10_000,
    server,
  });
  return server;
}

/** A peer that cannot start is a note, not a failed benchmark. */
async function optionalPeer<T>(
  notes: string[],
  peer: string,
  packages: readonly string[],
  unavailable: BenchContext["unavailable"],
  start: () => Promise<T>,
): Promise<T | null> {
  const reason = whyUnavailable(unavailable, packages);
  if (reason !== null) {
    notes.push(`${peer} skipped: ${reason}`);
    return null;
  }
  try {
    return await start();
  } catch (error) {
    notes.push(`${peer} skipped: could not start: ${errorMessage(error)}`);
    return null;
  }
}

// ---------------------------------------------------------------- rounds

interface Measured {
  contender: Contender;
  warmUps: Sample[];
  samples: Sample[];
  failure: string | null;
}

/**
 * A warm-up round, then `runs` rounds, each tool once per round, the order rotating: the machine
 * drifts during a run, and rotating spreads the drift over all tools.
 */
async function runRounds(name: string, contenders: readonly Contender[], context: BenchContext) {
  const measured: Measured[] = contenders.map((contender) => ({
    contender,
    warmUps: [],
    samples: [],
    failure: null,
  }));
  for (let round = 0; round <= context.runs; round++) {
    const shift = round % Math.max(measured.length, 1);
    for (const entry of [...measured.slice(shift), ...measured.slice(0, shift)]) {
      if (entry.failure !== null) continue;
      const label = `${name}: ${entry.contender.tool}: ${round === 0 ? "warm-up" : `run ${round}/${context.runs}`}`;
      try {
        if (round === 0) {
          entry.warmUps = await entry.contender.warmUp();
          for (const sample of entry.warmUps) context.log(`${label}: ${describeSample(sample)}`);
        } else {
          const sample = await entry.contender.measure();
          entry.samples.push(sample);
          context.log(`${label}: ${describeSample(sample)}`);
        }
      } catch (error) {
        entry.failure = errorMessage(error);
        context.log(`${label}: failed: ${entry.failure}`);
      }
    }
  }
  return measured;
}

function describeSample(sample: Sample): string {
  const bytes = sample.details.payloadBytes;
  const payload = typeof bytes === "number" ? `${bytes / MiB} MiB in ` : "";
  const rerun = sample.details.replacedShortRun === undefined ? "" : ", after a run too short to count";
  return `${sample.mbit.toFixed(1)} Mbit/s (${payload}${sample.wallSeconds.toFixed(2)} s${rerun})`;
}

function toFigure({ contender, warmUps, samples }: Measured): Figure | null {
  if (samples.length === 0) return null;
  const result = figure(
    {
      tool: contender.tool,
      role: contender.role,
      metric: "Mbit/s",
      better: "higher",
      ...costOfRuns(samples),
      details: {
        ...contender.details(),
        wallSeconds: samples.map((sample) => sample.wallSeconds),
        runs: samples.map((sample) => sample.details),
        warmUps: warmUps.map((sample) => ({ mbit: sample.mbit, ...sample.details })),
      },
    },
    samples.map((sample) => sample.mbit),
  );
  return contender.transfer ? { ...result, megabytesPerSecond: result.median / 8 } : result;
}

function linkFigure(settings: LinkSettings): Figure {
  return figure(
    {
      tool: "link",
      role: "limit",
      metric: "Mbit/s",
      better: "higher",
      details: { link: describeLink(settings), tcpGoodputMbit: tcpGoodputMbit(settings) },
    },
    [settings.rateMbit],
  );
}

// ---------------------------------------------------------------- one benchmark on one link

interface LinkRun {
  figures: Figure[];
  byTool: Map<string, Figure>;
  measured: Measured[];
  session: WanSession;
}

/**
 * Brings the link up, starts the servers in host b, measures the contenders from host a, and
 * takes everything down again, whatever happens.
 */
async function onLink(
  name: string,
  settings: LinkSettings,
  context: BenchContext,
  contenders: (session: WanSession) => Contender[],
  report: (run: LinkRun) => BenchOutcome,
  /** Extra teleport hosts to start: their `host` options, by name (WanSession.variants). */
  hostVariants: Record<string, string[]> = {},
): Promise<BenchOutcome> {
  const why = whyNoNetsim(context.repoRoot);
  const netsim = findNetsim(context.repoRoot);
  if (why !== null || netsim === null) return { status: "skipped", reason: why ?? "netsim not found" };
  const temp = makeTempDir(`wan-${name}`);
  let link: NetsimLink | undefined;
  try {
    const ladder = await ensurePayloadLadder(context.workDir);
    link = await bringUpLink(netsim, `tb-${process.pid}-${name}`, settings);
    context.log(`${name}: link up: ${describeLink(settings)}`);
    const session = await openSession(context, link, ladder, temp.path, hostVariants);
    try {
      const measured = await runRounds(name, contenders(session), context);
      const figures = measured.flatMap((entry) => toFigure(entry) ?? []);
      figures.push(linkFigure(settings));
      const outcome = report({
        figures,
        byTool: new Map(figures.map((f) => [f.tool, f])),
        measured,
        session,
      });
      if (outcome.status !== "ok") return outcome;
      const failures = measured.flatMap((entry) =>
        entry.failure === null ? [] : [`${entry.contender.tool} failed: ${entry.failure}`],
      );
      const details = {
        link: describeLink(settings),
        congestionControl: await link.congestionControl("a"),
        forwarder: link.counters(),
        ...outcome.details,
      };
      return { ...outcome, notes: [...session.notes, ...failures, ...(outcome.notes ?? [])], details };
    } finally {
      await closeSession(session);
    }
  } catch (error) {
    return { status: "failed", reason: errorMessage(error) };
  } finally {
    await link?.down();
    temp.remove();
  }
}

async function openSession(
  context: BenchContext,
  link: NetsimLink,
  ladder: PayloadLadder,
  dir: string,
  hostVariants: Record<string, string[]>,
): Promise<WanSession> {
  const notes: string[] = [];
  const host = await startTeleportHost(link, context.cli, ladder.dir, dir);
  const variants = new Map<string, TeleportHost>();
  for (const [name, args] of Object.entries(hostVariants)) {
    variants.set(
      name,
      await startTeleportHost(link, context.cli, ladder.dir, join(dir, `host-${name}`), args),
    );
  }
  const rsyncDaemon = await optionalPeer(notes, "rsync-daemon", ["rsync"], context.unavailable, () =>
    startRsyncDaemonIn(link, ladder.dir, dir),
  );
  const iperfServer = await optionalPeer(notes, "iperf3", ["iperf3"], context.unavailable, () =>
    startIperfServer(link, dir),
  );
  const scratch = join(dir, "scratch");
  mkdirSync(scratch);
  return {
    context,
    link,
    ladder,
    teleportLink: host.link,
    teleportHost: host.server,
    variants,
    rsyncDaemon,
    iperfServer,
    scratch,
    notes,
  };
}

async function closeSession(session: WanSession): Promise<void> {
  await session.iperfServer?.stop();
  await session.rsyncDaemon?.server.stop();
  for (const variant of session.variants.values()) await variant.server.stop();
  const exit = await session.teleportHost.stop();
  if (exit.code !== 0) {
    session.notes.push(`teleport host did not exit 0 on SIGTERM: code ${exit.code}, ${exit.signal}`);
  }
}

/** rsync (one stream) and iperf3 (one stream and eight), those that could start. */
function peerContenders(session: WanSession): Contender[] {
  const peers: Contender[] = [];
  if (session.rsyncDaemon !== null) peers.push(rsyncContender(session, session.rsyncDaemon));
  if (session.iperfServer !== null) peers.push(iperfContender(session, 1), iperfContender(session, 8));
  return peers;
}

// ---------------------------------------------------------------- outcomes

/** The ratios every WAN benchmark reports for `subject`, against whichever peers ran. */
function throughputRatios(subject: Figure, settings: LinkSettings, byTool: Map<string, Figure>): Ratio[] {
  const ratios: Ratio[] = [{ name: "throughput / link rate", value: subject.median / settings.rateMbit }];
  const rsync = byTool.get("rsync-daemon");
  if (rsync !== undefined)
    ratios.push({ name: "throughput vs rsync-daemon", value: subject.median / rsync.median });
  const iperf = bestIperf(byTool);
  if (iperf !== undefined)
    ratios.push({ name: "throughput vs iperf3", value: subject.median / iperf.median });
  return ratios;
}

/** The practical limit: the better of iperf3's one-stream and eight-stream figures. */
function bestIperf(byTool: Map<string, Figure>): Figure | undefined {
  const iperfs = [...byTool.values()].filter((entry) => entry.tool.startsWith("iperf3"));
  return iperfs.sort((a, b) => b.median - a.median)[0];
}

function linkShareCheck(subject: Figure, settings: LinkSettings, share: number): Check {
  const achieved = subject.median / settings.rateMbit;
  return {
    description:
      `${subject.tool} >= ${share * 100}% of link rate (${settings.rateMbit} Mbit/s): ` +
      `${subject.median.toFixed(1)} Mbit/s = ${(achieved * 100).toFixed(1)}%`,
    met: achieved >= share,
  };
}

/** Null (and a note) when rsync has no figure in this run: an unmeasured target is not a failed one. */
function rsyncMultipleCheck(subject: Figure, byTool: Map<string, Figure>, factor: number): Check | null {
  const rsync = byTool.get("rsync-daemon");
  if (rsync === undefined) return null;
  const ratio = subject.median / rsync.median;
  return {
    description:
      `${subject.tool} >= ${factor}x a single TCP stream (rsync-daemon ${rsync.median.toFixed(1)} Mbit/s): ` +
      `${ratio.toFixed(1)}x`,
    met: ratio >= factor,
  };
}

interface WanTarget {
  name: string;
  title: string;
  target: string;
  settings: LinkSettings;
  /** Share of the link rate teleport must reach. */
  linkShare: number;
  /** Multiple of the rsync daemon's (one TCP stream) throughput teleport must reach. */
  rsyncMultiple?: number;
}

function wanBenchmark(spec: WanTarget): Benchmark {
  return {
    name: spec.name,
    title: spec.title,
    target: spec.target,
    quick: false,
    packages: PACKAGES,
    run: (context) =>
      onLink(
        spec.name,
        spec.settings,
        context,
        (session) => [teleportContender(session, "auto"), ...peerContenders(session)],
        (run) => wanOutcome(spec, run),
      ),
  };
}

function wanOutcome(spec: WanTarget, { figures, byTool, measured }: LinkRun): BenchOutcome {
  const teleport = byTool.get("teleport");
  if (teleport === undefined) {
    const failure = measured.find((entry) => entry.contender.tool === "teleport")?.failure;
    return { status: "failed", reason: `teleport: ${failure ?? "no timed run"}` };
  }
  const notes: string[] = [];
  const checks = [linkShareCheck(teleport, spec.settings, spec.linkShare)];
  if (spec.rsyncMultiple !== undefined) {
    const check = rsyncMultipleCheck(teleport, byTool, spec.rsyncMultiple);
    if (check === null) notes.push(`>= ${spec.rsyncMultiple}x rsync not checked: rsync-daemon has no figure`);
    else checks.push(check);
  }
  return {
    status: "ok",
    figures,
    ratios: throughputRatios(teleport, spec.settings, byTool),
    checks,
    notes,
  };
}

/**
 * One data stream from a host that sets BBR on its sockets (the default) and from one that leaves
 * the kernel's congestion control, reno on this link: what per-socket congestion control
 * (TCP_CONGESTION, through the native addon) is worth where a single connection meets loss.
 */
const bbrSingleStream: Benchmark = {
  name: "wan_bbr_single",
  title: `one stream with BBR set per socket vs the system's reno, ${describeLink(LOSSY_RENO)}`,
  target: "BBR per socket >= 5x reno, one stream each",
  quick: false,
  packages: PACKAGES,
  run: (context) =>
    onLink(
      "wan_bbr_single",
      LOSSY_RENO,
      context,
      (session) => {
        const reno = session.variants.get("system") as TeleportHost;
        const single = (tool: string, expectedMbit: number, host?: TeleportHost) =>
          sizedTransfer(
            {
              tool,
              role: "subject",
              expectedMbit,
              details: { streams: 1 },
              run: (file) => pullWithTeleport(session, file, ["--streams", "1"], host),
            },
            session.ladder,
          );
        return [
          single("teleport --streams 1 (host: bbr per socket)", tcpGoodputMbit(LOSSY_RENO)),
          single("teleport --streams 1 (host: --congestion system)", singleStreamMbit(LOSSY_RENO), reno),
          ...(session.rsyncDaemon === null ? [] : [rsyncContender(session, session.rsyncDaemon)]),
        ];
      },
      bbrSingleOutcome,
      { system: ["--congestion", "system"] },
    ),
};

function bbrSingleOutcome({ figures, byTool, measured }: LinkRun): BenchOutcome {
  const bbr = byTool.get("teleport --streams 1 (host: bbr per socket)");
  const reno = byTool.get("teleport --streams 1 (host: --congestion system)");
  if (bbr === undefined || reno === undefined) {
    const failures = measured.flatMap((entry) => entry.failure ?? []);
    return { status: "failed", reason: `teleport: ${failures.join("; ") || "no timed run"}` };
  }
  const gain = bbr.median / reno.median;
  return {
    status: "ok",
    figures,
    ratios: [{ name: "bbr per socket vs system reno, one stream", value: gain }],
    checks: [{ description: `BBR per socket ${gain.toFixed(1)}x the system's reno (>= 5)`, met: gain >= 5 }],
  };
}

const STREAM_COUNTS = [1, 2, 4, 8, 16, 32, 64, 128] as const;

const parallelStreams: Benchmark = {
  name: "parallel_streams",
  title: `teleport throughput per --streams count (and auto), ${describeLink(LOSSY_RENO)}`,
  target:
    "auto within 10% of the best fixed stream count, >= 50% of link rate, >= 5x a single TCP stream (rsync)",
  quick: false,
  packages: PACKAGES,
  run: (context) =>
    onLink(
      "parallel_streams",
      LOSSY_RENO,
      context,
      (session) => [
        teleportContender(session, "auto"),
        ...STREAM_COUNTS.map((streams) => teleportContender(session, streams)),
        ...peerContenders(session),
      ],
      parallelStreamsOutcome,
    ),
};

function parallelStreamsOutcome({ figures, byTool, measured }: LinkRun): BenchOutcome {
  const auto = byTool.get("teleport");
  if (auto === undefined) {
    const failure = measured.find((entry) => entry.contender.tool === "teleport")?.failure;
    return { status: "failed", reason: `teleport (auto streams): ${failure ?? "no timed run"}` };
  }
  const fixed = STREAM_COUNTS.flatMap((streams) => {
    const entry = byTool.get(`teleport --streams ${streams}`);
    return entry === undefined ? [] : [{ streams, figure: entry }];
  });
  const best = [...fixed].sort((a, b) => b.figure.median - a.figure.median)[0];
  const notes: string[] = [];
  const ratios = throughputRatios(auto, LOSSY_RENO, byTool);
  const checks: Check[] = [];
  if (best === undefined) {
    notes.push("no fixed stream count finished: auto not compared");
  } else {
    const share = auto.median / best.figure.median;
    ratios.push({ name: "auto vs best fixed streams", value: share });
    checks.push({
      description:
        `auto (${auto.median.toFixed(1)} Mbit/s) within 10% of the best fixed count ` +
        `(--streams ${best.streams}: ${best.figure.median.toFixed(1)} Mbit/s): ${(share * 100).toFixed(1)}%`,
      met: share >= 0.9,
    });
  }
  checks.push(linkShareCheck(auto, LOSSY_RENO, 0.5));
  const rsyncCheck = rsyncMultipleCheck(auto, byTool, 5);
  if (rsyncCheck === null) notes.push(">= 5x rsync not checked: rsync-daemon has no figure");
  else checks.push(rsyncCheck);
  const autoStreams = (auto.details?.runs as { streamsUsed?: unknown }[] | undefined)?.map(
    (run) => run.streamsUsed,
  );
  notes.push(`auto used ${JSON.stringify(autoStreams)} streams per run`);
  return {
    status: "ok",
    figures,
    ratios,
    checks,
    series: [streamsSeries(auto, fixed, byTool)],
    notes,
    details: { bestFixedStreams: best?.streams ?? null, autoStreamsUsed: autoStreams },
  };
}

function streamsSeries(
  auto: Figure,
  fixed: readonly { streams: number; figure: Figure }[],
  byTool: Map<string, Figure>,
): Series {
  const points: Series["points"] = fixed.map(({ streams, figure: entry }) => ({
    x: streams,
    y: entry.median,
    group: "teleport",
  }));
  points.push({ x: "auto", y: auto.median, group: "teleport" });
  // Plain TCP at the same stream counts, for reference: what the link gives N streams.
  const references: [string, number, string][] = [
    ["rsync-daemon", 1, "rsync-daemon"],
    ["iperf3", 1, "iperf3"],
    ["iperf3 -P 8", 8, "iperf3"],
  ];
  for (const [tool, x, group] of references) {
    const entry = byTool.get(tool);
    if (entry !== undefined) points.push({ x, y: entry.median, group });
  }
  return {
    title: `throughput vs streams, ${describeLink(LOSSY_RENO)}`,
    xLabel: "streams",
    yLabel: "Mbit/s",
    points,
  };
}

// ---------------------------------------------------------------- many small files over the WAN

/** many_small's tree, and one file of the same bytes beside it. */
const SMALL_FILES = { count: 20_000, bytes: 10_000 } as const;

/**
 * The same bytes as 20,000 files of 10 KB and as one file, over 1 Gbit/s at 50 ms RTT: per-file
 * round trips would show here as a tree taking many times the file's time (20,000 x 50 ms is
 * 1,000 s). rsync, which pipelines its file list, pulls both too, for comparison.
 */
const wanManySmall: Benchmark = {
  name: "wan_many_small",
  title: `20,000 files of 10 KB against one file of the same 200 MB, ${describeLink(ONE_GBIT_50MS)}`,
  target: "the tree within 2x of the time of the one file",
  quick: false,
  packages: PACKAGES,
  run: async (context) => {
    const dir = join(context.workDir, "wan-payloads");
    const name = `small-${SMALL_FILES.count}`;
    const tree: LadderFile = { name, payload: await ensureRandomTree(dir, name, [SMALL_FILES], 1000) };
    const oneFileName = `${name}-as-one-file.bin`;
    const oneFile: LadderFile = {
      name: oneFileName,
      payload: await ensureRandomFile(join(dir, oneFileName), SMALL_FILES.count * SMALL_FILES.bytes),
    };
    return onLink(
      "wan_many_small",
      ONE_GBIT_50MS,
      context,
      (session) => {
        const contenders = [
          fixedContender("teleport (tree)", "subject", () => pullWithTeleport(session, tree)),
          fixedContender("teleport (one file)", "subject", () => pullWithTeleport(session, oneFile)),
        ];
        const rsync = session.rsyncDaemon?.server;
        if (rsync !== undefined) {
          contenders.push(
            fixedContender("rsync-daemon (tree)", "peer", () => pullWithRsync(session, rsync, tree)),
            fixedContender("rsync-daemon (one file)", "peer", () => pullWithRsync(session, rsync, oneFile)),
          );
        }
        return contenders;
      },
      manySmallOutcome,
    );
  },
};

/** The same payload every run. */
function fixedContender(tool: string, role: Figure["role"], run: () => Promise<Sample>): Contender {
  return { tool, role, transfer: true, warmUp: async () => [await run()], measure: run, details: () => ({}) };
}

function manySmallOutcome({ figures, byTool, measured }: LinkRun): BenchOutcome {
  const tree = byTool.get("teleport (tree)");
  const oneFile = byTool.get("teleport (one file)");
  if (tree === undefined || oneFile === undefined) {
    const failures = measured.flatMap((entry) => entry.failure ?? []);
    return { status: "failed", reason: `teleport: ${failures.join("; ") || "no timed run"}` };
  }
  // Same bytes: the ratio of times is the inverse ratio of throughputs.
  const slowdown = oneFile.median / tree.median;
  const ratios: Ratio[] = [
    { name: "teleport: tree time / one-file time", value: slowdown },
    { name: "teleport tree throughput / link rate", value: tree.median / ONE_GBIT_50MS.rateMbit },
  ];
  const rsyncTree = byTool.get("rsync-daemon (tree)");
  const rsyncFile = byTool.get("rsync-daemon (one file)");
  if (rsyncTree !== undefined && rsyncFile !== undefined) {
    ratios.push({
      name: "rsync-daemon: tree time / one-file time",
      value: rsyncFile.median / rsyncTree.median,
    });
    ratios.push({
      name: "teleport tree vs rsync-daemon tree (throughput)",
      value: tree.median / rsyncTree.median,
    });
  }
  return {
    status: "ok",
    figures,
    ratios,
    checks: [
      {
        description:
          `tree within 2x of one file: ${tree.median.toFixed(1)} against ${oneFile.median.toFixed(1)} ` +
          `Mbit/s, ${slowdown.toFixed(2)}x the time`,
        met: slowdown <= 2,
      },
    ],
  };
}

/**
 * A real source tree (see compress_text) over a 50 ms link: where the link is the limit, what
 * compression saves in bytes it should save in time. rsync -z (zstd) beside it.
 */
function compressTextWan(name: string, settings: LinkSettings): Benchmark {
  return {
    name,
    title: `a real source tree (node_modules), ${describeLink(settings)}, compression on, off and auto`,
    target: "auto (and on) >= 2x faster than off",
    quick: false,
    packages: PACKAGES,
    run: async (context) => {
      const dir = join(context.workDir, "wan-payloads");
      const tree: LadderFile = {
        name: "source-tree",
        payload: await sourceTree(context, dir, "source-tree"),
      };
      return onLink(
        name,
        settings,
        context,
        (session) => {
          const contenders = [
            fixedContender("teleport (auto)", "subject", () => pullWithTeleport(session, tree)),
            fixedContender("teleport --compress on", "subject", () =>
              pullWithTeleport(session, tree, ["--compress", "on"]),
            ),
            fixedContender("teleport --compress off", "subject", () =>
              pullWithTeleport(session, tree, ["--compress", "off"]),
            ),
          ];
          const rsync = session.rsyncDaemon?.server;
          if (rsync !== undefined) {
            contenders.push(
              fixedContender("rsync-daemon", "peer", () => pullWithRsync(session, rsync, tree)),
              fixedContender("rsync-daemon -z (zstd)", "peer", () =>
                pullWithRsync(session, rsync, tree, ["-z", "--compress-choice=zstd"]),
              ),
            );
          }
          return contenders;
        },
        compressTextWanOutcome,
      );
    },
  };
}

function compressTextWanOutcome({ figures, byTool, measured }: LinkRun): BenchOutcome {
  const auto = byTool.get("teleport (auto)");
  const on = byTool.get("teleport --compress on");
  const off = byTool.get("teleport --compress off");
  if (auto === undefined || on === undefined || off === undefined) {
    const failures = measured.flatMap((entry) => entry.failure ?? []);
    return { status: "failed", reason: `teleport: ${failures.join("; ") || "no timed run"}` };
  }
  // Figures are Mbit/s of payload: same bytes, so a throughput ratio is a speed-up.
  const ratios: Ratio[] = [
    { name: "auto vs off (speed-up)", value: auto.median / off.median },
    { name: "on vs off (speed-up)", value: on.median / off.median },
  ];
  const rsyncZ = byTool.get("rsync-daemon -z (zstd)");
  if (rsyncZ !== undefined)
    ratios.push({ name: "auto vs rsync -z (throughput)", value: auto.median / rsyncZ.median });
  return {
    status: "ok",
    figures,
    ratios,
    checks: [
      {
        description: `auto ${(auto.median / off.median).toFixed(2)}x the speed of off (>= 2)`,
        met: auto.median >= 2 * off.median,
      },
      {
        description: `on ${(on.median / off.median).toFixed(2)}x the speed of off (>= 2)`,
        met: on.median >= 2 * off.median,
      },
    ],
  };
}

const TRANSPORTS = ["tcp", "quic", "auto"] as const;

/**
 * One large file pulled over each transport (`--transport tcp|quic|auto`) on one link. TCP's
 * congestion control is the link's setting; quinn runs its own (cubic) whatever the kernel's.
 */
function transportWan(name: string, settings: LinkSettings): Benchmark {
  return {
    name,
    title: `TCP pool vs QUIC vs auto, ${describeLink(settings)}`,
    target: "auto within 10% of the better of TCP and QUIC",
    quick: false,
    packages: PACKAGES,
    run: (context) =>
      onLink(
        name,
        settings,
        context,
        (session) =>
          TRANSPORTS.map((transport) =>
            sizedTransfer(
              {
                tool: `teleport --transport ${transport}`,
                role: "subject",
                expectedMbit: singleStreamMbit(settings),
                details: { transport },
                run: (file) => pullWithTeleport(session, file, ["--transport", transport]),
              },
              session.ladder,
            ),
          ),
        transportWanOutcome,
      ),
  };
}

function transportWanOutcome({ figures, byTool, measured }: LinkRun): BenchOutcome {
  const [tcp, quic, auto] = TRANSPORTS.map((transport) => byTool.get(`teleport --transport ${transport}`));
  if (tcp === undefined || quic === undefined || auto === undefined) {
    const failures = measured.flatMap((entry) => entry.failure ?? []);
    return { status: "failed", reason: `teleport: ${failures.join("; ") || "no timed run"}` };
  }
  const best = Math.max(tcp.median, quic.median);
  return {
    status: "ok",
    figures,
    ratios: [
      { name: "quic vs tcp", value: quic.median / tcp.median },
      { name: "auto vs the better of tcp and quic", value: auto.median / best },
    ],
    checks: [
      {
        description: `auto ${(auto.median / best).toFixed(2)}x the better of TCP and QUIC (>= 0.9)`,
        met: auto.median >= 0.9 * best,
      },
    ],
  };
}

/** 100 Mbit/s and 1 Gbit/s, 50 ms, without loss and with 1%, under reno and BBR. */
const TRANSPORT_LINKS: [string, LinkSettings][] = [100, 1000].flatMap((rateMbit) =>
  [0, 0.01].flatMap((loss) =>
    (["reno", "bbr"] as const).map((congestionControl): [string, LinkSettings] => [
      `transport_${rateMbit === 100 ? "100m" : "1g"}_${loss === 0 ? "clean" : "loss1"}_${congestionControl}`,
      { rateMbit, delayMs: 25, loss, congestionControl },
    ]),
  ),
);

export const wanBenchmarks: Benchmark[] = [
  wanBenchmark({
    name: "wan_100m_50ms",
    title: "pull over 100 Mbit/s, 50 ms RTT",
    target: ">= 95% of link rate",
    settings: { rateMbit: 100, delayMs: 25, loss: 0 },
    linkShare: 0.95,
  }),
  wanBenchmark({
    name: "wan_1g_50ms",
    title: "pull over 1 Gbit/s, 50 ms RTT",
    target: ">= 90% of link rate",
    settings: ONE_GBIT_50MS,
    linkShare: 0.9,
  }),
  wanBenchmark({
    name: "wan_1g_50ms_loss_reno",
    title: "pull over 1 Gbit/s, 50 ms RTT, 0.1% loss, reno congestion control",
    target: ">= 50% of link rate and >= 5x a single TCP stream (rsync)",
    settings: LOSSY_RENO,
    linkShare: 0.5,
    rsyncMultiple: 5,
  }),
  wanBenchmark({
    name: "wan_1g_50ms_loss_bbr",
    title: "pull over 1 Gbit/s, 50 ms RTT, 0.1% loss, bbr congestion control",
    target: ">= 90% of link rate",
    settings: { ...ONE_GBIT_50MS, loss: 0.001 },
    linkShare: 0.9,
  }),
  parallelStreams,
  bbrSingleStream,
  wanManySmall,
  compressTextWan("compress_text_wan", ONE_GBIT_50MS),
  compressTextWan("compress_text_wan_100m", { rateMbit: 100, delayMs: 25, loss: 0 }),
  ...TRANSPORT_LINKS.map(([name, settings]) => transportWan(name, settings)),
];

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
