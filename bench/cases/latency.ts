/**
 * Latency on loopback, through a separate client process: connect to first byte of a 1 GiB file
 * (against a bare TLS handshake to the same host), 4 KiB reads at random offsets over an open
 * connection (against a ping round trip on that connection), and a cold host's first chunk of a
 * file against the end of its hashing (manifests stream).
 */
import { join } from "node:path";
import { measureCommand } from "../lib/measure.js";
import { ensureRandomFile, type Payload } from "../lib/payload.js";
import { figure, median, quantile } from "../lib/stats.js";
import { startTeleportHost } from "../lib/teleport.js";
import type { BenchContext, Benchmark, BenchOutcome, Figure } from "../lib/types.js";

const MiB = 1024 * 1024;

interface ProbeReport {
  firstByteMs: number;
  handshakeMs: number;
  pingMs: number[];
  readMs: number[];
}

async function payloadFor(context: BenchContext): Promise<Payload> {
  const bytes = context.quick ? 128 * MiB : 1024 * MiB;
  return ensureRandomFile(join(context.workDir, `file-${bytes / MiB}m`, "file.bin"), bytes);
}

/** Runs the probe `probes` times against one host; the first run is a warm-up and is dropped. */
async function probe(
  context: BenchContext,
  payload: Payload,
  probes: number,
  reads: number,
): Promise<ProbeReport[]> {
  const host = await startTeleportHost(context.cli, payload.root);
  const driver = join(context.repoRoot, "dist", "bench", "drivers", "latency-probe.js");
  try {
    const reports: ProbeReport[] = [];
    for (let i = 0; i <= probes; i++) {
      const run = await measureCommand({
        command: process.execPath,
        args: [driver, host.link, payload.name, String(payload.bytes), String(reads)],
      });
      if (run.exitCode !== 0) throw new Error(`latency probe failed: ${run.stderr.trim().slice(-500)}`);
      if (i > 0) reports.push(JSON.parse(run.stdout) as ProbeReport);
    }
    return reports;
  } finally {
    await host.stop();
  }
}

/** A latency figure: one sample of milliseconds per probe. */
function msFigure<Report>(
  tool: string,
  role: Figure["role"],
  reports: readonly Report[],
  milliseconds: (report: Report) => number,
): Figure {
  return figure({ tool, role, metric: "ms", better: "lower" }, reports.map(milliseconds));
}

/**
 * A quick benchmark of probes (at least 3) against one host: `reads` random reads each, and
 * `outcome` to judge them.
 */
function probeBenchmark(
  spec: Pick<Benchmark, "name" | "title" | "target">,
  reads: (context: BenchContext) => number,
  outcome: (reports: ProbeReport[], reads: number) => BenchOutcome,
): Benchmark {
  return {
    ...spec,
    quick: true,
    run: async (context) => {
      const payload = await payloadFor(context);
      const count = reads(context);
      return outcome(await probe(context, payload, Math.max(context.runs, 3), count), count);
    },
  };
}

export const firstByte: Benchmark = probeBenchmark(
  {
    name: "first_byte",
    title: "connect (TLS, pinned certificate, secret proof) to the first byte of a 1 GiB file",
    target: "< 50 ms",
  },
  () => 0,
  (reports) => {
    const teleport = msFigure("teleport", "subject", reports, (report) => report.firstByteMs);
    const handshake = msFigure("tls-handshake", "limit", reports, (report) => report.handshakeMs);
    return {
      status: "ok",
      figures: [teleport, handshake],
      ratios: [{ name: "first byte vs TLS handshake", value: handshake.median / teleport.median }],
      checks: [{ description: `< 50 ms: ${teleport.median.toFixed(1)} ms`, met: teleport.median < 50 }],
    };
  },
);

export const random4k: Benchmark = probeBenchmark(
  {
    name: "random_4k",
    title: "4 KiB reads at random offsets of a 1 GiB file, one at a time over an open connection",
    target: "p50 < 1 ms, p99 < 5 ms",
  },
  (context) => (context.quick ? 500 : 2000),
  (reports, reads) => {
    const p50 = msFigure("teleport p50", "subject", reports, (report) => quantile(report.readMs, 0.5));
    const p99 = msFigure("teleport p99", "subject", reports, (report) => quantile(report.readMs, 0.99));
    const ping = msFigure("ping round trip", "limit", reports, (report) => median(report.pingMs));
    return {
      status: "ok",
      figures: [p50, p99, ping],
      ratios: [{ name: "p50 vs ping", value: ping.median / p50.median }],
      checks: [
        { description: `p50 < 1 ms: ${p50.median.toFixed(3)} ms`, met: p50.median < 1 },
        { description: `p99 < 5 ms: ${p99.median.toFixed(3)} ms`, met: p99.median < 5 },
      ],
      details: { readsPerProbe: reads, probes: reports.length },
    };
  },
);

interface FirstChunkReport {
  firstChunkMs: number;
  fileEndMs: number;
  chunkCount: number;
}

/**
 * Runs the first-chunk probe `probes` times (after a warm-up), each against a host started cold
 * for it, so that the file is hashed while the probe waits.
 */
async function probeFirstChunk(context: BenchContext, payload: Payload, probes: number) {
  const driver = join(context.repoRoot, "dist", "bench", "drivers", "first-chunk-probe.js");
  const reports: FirstChunkReport[] = [];
  for (let i = 0; i <= probes; i++) {
    const host = await startTeleportHost(context.cli, payload.root);
    try {
      const run = await measureCommand({
        command: process.execPath,
        args: [driver, host.link, payload.name],
      });
      if (run.exitCode !== 0) throw new Error(`first-chunk probe failed: ${run.stderr.trim().slice(-500)}`);
      if (i > 0) reports.push(JSON.parse(run.stdout) as FirstChunkReport);
    } finally {
      await host.stop();
    }
  }
  return reports;
}

/** Manifests stream: chunks can be fetched while the host is still hashing the file they belong to. */
export const firstChunkLatency: Benchmark = {
  name: "first_chunk_latency",
  title: "a cold host: the first chunk of a 1 GiB file fetched against the host's FILE_END (all hashed)",
  target: "the first chunk verified before the host has hashed the whole file",
  quick: true,
  run: async (context): Promise<BenchOutcome> => {
    const payload = await payloadFor(context);
    const reports = await probeFirstChunk(context, payload, Math.max(context.runs, 3));
    const firstChunk = msFigure("teleport first chunk", "subject", reports, (report) => report.firstChunkMs);
    const fileEnd = msFigure("host FILE_END (file hashed)", "limit", reports, (report) => report.fileEndMs);
    const early = reports.filter((report) => report.firstChunkMs < report.fileEndMs).length;
    return {
      status: "ok",
      figures: [firstChunk, fileEnd],
      ratios: [{ name: "FILE_END vs first chunk", value: fileEnd.median / firstChunk.median }],
      checks: [
        {
          description: `first chunk before FILE_END in ${early} of ${reports.length} probes`,
          met: early === reports.length,
        },
      ],
      details: { chunkCount: reports[0]?.chunkCount ?? null, fileBytes: payload.bytes },
    };
  },
};

export const latencyBenchmarks: Benchmark[] = [firstByte, random4k, firstChunkLatency];
