/**
 * The servers of one WAN benchmark, in netsim host b (teleport hosts, an rsync daemon, an iperf3
 * server), and the contenders that pull from them in host a. The servers are bench/lib's, started
 * on the link's site; each pull is capped so that a hung one fails instead of stalling the suite.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type CommandSpec, type CommandUsage, cappedCommand, measureCommand } from "../../lib/measure.js";
import type { NetsimLink } from "../../lib/netsim.js";
import { type RsyncDaemon, startRsyncDaemon, whyUnavailable } from "../../lib/peers.js";
import { type ServerProcess, treeScratchParent } from "../../lib/processes.js";
import { parseRsyncStats } from "../../lib/rsync-stats.js";
import {
  parsePullReport,
  startTeleportHost,
  type TeleportHost,
  teleportPullCommand,
  uncleanExit,
} from "../../lib/teleport.js";
import { commandFailure, errorMessage, type MeasuredCopy, measuredCopy } from "../../lib/transfer.js";
import type { BenchContext } from "../../lib/types.js";
import { type Contender, type Sample, sizedContender } from "./contender.js";
import { type PayloadLadder, type SharedPayload, singleStreamMbit } from "./ladder.js";

/** A run still going after this is ended and counts as failed: hung, not slow. */
const RUN_CAP_SECONDS = 180;
const IPERF_SECONDS = 5;
const IPERF_WARMUP_SECONDS = 2;
/** Seconds of iperf3's slow start left out of its figure: it stands for the link, not a transfer. */
const IPERF_OMIT_SECONDS = 1;
const IPERF_PORT = 5201;

export interface WanSession {
  context: BenchContext;
  link: NetsimLink;
  ladder: PayloadLadder;
  host: TeleportHost;
  /** More teleport hosts of the same folder, started with other options, by name. */
  variants: Map<string, TeleportHost>;
  rsyncDaemon: RsyncDaemon | null;
  iperfServer: ServerProcess | null;
  /** Where each run's copy lands and each pull's TELEPORT_HOME is made. */
  scratch: string;
  notes: string[];
}

/** Starts the servers in host b: teleport hosts always, rsync and iperf3 where they can. */
export async function openSession(
  context: BenchContext,
  link: NetsimLink,
  ladder: PayloadLadder,
  scratch: string,
  hostVariants: Record<string, string[]>,
): Promise<WanSession> {
  const notes: string[] = [];
  const site = link.site("b");
  const host = await startTeleportHost(context.cli, ladder.dir, { site });
  const variants = new Map<string, TeleportHost>();
  for (const [name, hostArgs] of Object.entries(hostVariants))
    variants.set(name, await startTeleportHost(context.cli, ladder.dir, { site, hostArgs }));
  const rsyncDaemon = await optionalPeer(notes, "rsync-daemon", "rsync", context, () =>
    startRsyncDaemon(ladder.dir, site),
  );
  const iperfServer = await optionalPeer(notes, "iperf3", "iperf3", context, async () => {
    const server = await site.startServer(
      "iperf3 server",
      "iperf3",
      ["-s", "-B", site.address, "-p", String(IPERF_PORT)],
      { logPath: join(scratch, "iperf3-server.log") },
    );
    await site.waitForListener(IPERF_PORT, server);
    return server;
  });
  return { context, link, ladder, host, variants, rsyncDaemon, iperfServer, scratch, notes };
}

export async function closeSession(session: WanSession): Promise<void> {
  await session.iperfServer?.stop();
  await session.rsyncDaemon?.stop();
  for (const variant of session.variants.values()) await variant.stop();
  const unclean = uncleanExit(await session.host.stop());
  if (unclean !== null) session.notes.push(`teleport ${unclean}`);
}

/** A peer that cannot start is a note, not a failed benchmark. */
async function optionalPeer<T>(
  notes: string[],
  peer: string,
  debianPackage: string,
  context: BenchContext,
  start: () => Promise<T>,
): Promise<T | null> {
  const reason = whyUnavailable(context.unavailable, [debianPackage]);
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

/** The teleport host started with other options under `name` (openSession's hostVariants). */
export function hostVariant(session: WanSession, name: string): TeleportHost {
  const host = session.variants.get(name);
  if (host === undefined) throw new Error(`no teleport host variant ${name} in this session`);
  return host;
}

/** teleport with its stream count automatic or fixed, sized on the ladder. */
export function teleportContender(session: WanSession, streams: number | "auto"): Contender {
  const streamArgs = streams === "auto" ? [] : ["--streams", String(streams)];
  return sizedContender(
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
export async function pullWithTeleport(
  session: WanSession,
  file: SharedPayload,
  extraArgs: readonly string[] = [],
  host: TeleportHost = session.host,
): Promise<Sample> {
  const destDir = destinationFor(session, file);
  // A fresh TELEPORT_HOME per run: a cold pull, never a re-pull.
  const home = mkdtempSync(join(session.scratch, "home-"));
  const pull = teleportPullCommand(session.context.cli, host.link, destDir, home, [
    "--path",
    file.name,
    ...extraArgs,
  ]);
  try {
    const copy = await cappedCopy(session, pull, host.server, file, destDir);
    const report = parsePullReport(copy.client.stdout);
    const sample = copySample(file, copy);
    sample.details.reportedMbit = (report.bytes * 8) / report.seconds / 1e6;
    // The most data streams the pull had open at once, and the counts the tuner went through.
    sample.details.streamsUsed = report.streamPool?.peakStreams ?? null;
    sample.details.tuning = report.streamPool?.tuning.map((step) => step.streams) ?? [];
    sample.details.bytesOnWire = report.bytesOnWire;
    return sample;
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

export function rsyncContender(session: WanSession, daemon: RsyncDaemon): Contender {
  return sizedContender(
    {
      tool: "rsync-daemon",
      role: "peer",
      expectedMbit: singleStreamMbit(session.link.settings),
      details: { version: daemon.version, streams: 1 },
      run: (file) => pullWithRsync(session, daemon, file),
    },
    session.ladder,
  );
}

export async function pullWithRsync(
  session: WanSession,
  daemon: RsyncDaemon,
  file: SharedPayload,
  extraArgs: readonly string[] = [],
): Promise<Sample> {
  const destDir = destinationFor(session, file);
  const recursive = file.payload.files > 1 ? ["-a"] : [];
  const pull = {
    command: "rsync",
    args: [...recursive, ...extraArgs, `${daemon.moduleUrl}/${file.name}`, `${destDir}/`],
  };
  const copy = await cappedCopy(session, pull, daemon.server, file, destDir);
  const sample = copySample(file, copy);
  if (extraArgs.includes("--stats"))
    sample.details.bytesOnWire = parseRsyncStats(copy.client.stdout).bytesReceived;
  return sample;
}

/** rsync (one stream) and iperf3 (one stream and eight), those that could start. */
export function peerContenders(session: WanSession): Contender[] {
  const peers: Contender[] = [];
  if (session.rsyncDaemon !== null) peers.push(rsyncContender(session, session.rsyncDaemon));
  if (session.iperfServer !== null) peers.push(iperfContender(session, 1), iperfContender(session, 8));
  return peers;
}

/** `pull` run in host a against `server`, measured and checked, then its copy removed. */
async function cappedCopy(
  session: WanSession,
  pull: CommandSpec,
  server: ServerProcess,
  file: SharedPayload,
  destDir: string,
): Promise<MeasuredCopy> {
  try {
    const command = cappedInHostA(session.link, pull);
    return await measuredCopy(command, server, file.payload, join(destDir, file.name), RUN_CAP_SECONDS);
  } finally {
    rmSync(destDir, { recursive: true, force: true });
  }
}

function copySample(file: SharedPayload, copy: MeasuredCopy): Sample {
  const { client, wallSeconds, ...cost } = copy;
  return {
    mbit: (file.payload.bytes * 8) / wallSeconds / 1e6,
    wallSeconds,
    ...cost,
    details: { payloadBytes: file.payload.bytes },
  };
}

/** `spec` in host a, ended after RUN_CAP_SECONDS should it hang. */
function cappedInHostA(link: NetsimLink, spec: CommandSpec): CommandSpec {
  const capped = cappedCommand(spec, RUN_CAP_SECONDS);
  return link.command("a", capped.command, capped.args, capped.env);
}

/** A fresh folder for a copy of `file`: a tree's goes where creating files is cheap (treeScratchParent). */
function destinationFor(session: WanSession, file: SharedPayload): string {
  if (file.payload.files === 1) return mkdtempSync(join(session.scratch, "dest-"));
  return mkdtempSync(join(treeScratchParent(file.payload.bytes), "teleport-bench-wan-dest-"));
}

function iperfContender(session: WanSession, parallel: number): Contender {
  const { link } = session;
  const run = async (seconds: number): Promise<Sample> => {
    // -R: host b sends, as in a pull.
    const args = ["-c", link.addresses.b, "-p", String(IPERF_PORT), "-R", "-t", String(seconds)];
    const omit = seconds > IPERF_OMIT_SECONDS + 1 ? ["-O", String(IPERF_OMIT_SECONDS)] : [];
    const iperf = { command: "iperf3", args: [...args, ...omit, "-P", String(parallel), "--json"] };
    const usage = await measureCommand(cappedInHostA(link, iperf));
    return {
      mbit: iperfReceiverBitsPerSecond(usage) / 1e6,
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
    throw commandFailure(usage, null, RUN_CAP_SECONDS);
  }
  const bits = parsed.end?.sum_received?.bits_per_second;
  if (usage.exitCode !== 0 || parsed.error !== undefined || typeof bits !== "number") {
    throw new Error(`iperf3 failed: ${parsed.error ?? commandFailure(usage, null, RUN_CAP_SECONDS).message}`);
  }
  return bits;
}
