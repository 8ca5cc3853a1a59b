/**
 * Latency on loopback, through a separate client process: connect to first byte of a 1 GiB file
 * (against a bare TLS handshake to the same host), and 4 KiB reads at random offsets over an open
 * connection (against a ping round trip on that connection).
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
function msFigure(
  tool: string,
  role: Figure["role"],
  reports: readonly ProbeReport[],
  milliseconds: (report: ProbeReport) => number,
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

export const latencyBenchmarks: Benchmark[] = [firstByte, random4k];
