/**
 * Cold pulls on loopback against the peers targets.md names: one large file, a mixed tree, and
 * many small files. Quick mode moves the same shapes at a fraction of the size.
 */
import { join } from "node:path";
import {
  ensureRandomFile,
  ensureRandomTree,
  ensureSparseFile,
  type FileGroup,
  type Payload,
} from "../lib/payload.js";
import {
  compareTransfers,
  rsyncDaemonTool,
  rsyncDaemonWith,
  SSH_PACKAGES,
  standardTools,
  type TransferTool,
  teleportTool,
} from "../lib/transfer.js";
import type { BenchContext, Benchmark, BenchOutcome, Check, Figure } from "../lib/types.js";

const MiB = 1024 * 1024;
const PEER_PACKAGES = ["rsync", ...SSH_PACKAGES];

/** A mixed tree of about 2 GiB, files from 1 KB to 200 MB (targets.md bulk_tree). */
const MIXED_TREE: readonly FileGroup[] = [
  { count: 3, bytes: 200e6 },
  { count: 12, bytes: 50e6 },
  { count: 50, bytes: 10e6 },
  { count: 200, bytes: 1e6 },
  { count: 1000, bytes: 100e3 },
  { count: 3000, bytes: 10e3 },
  { count: 2000, bytes: 1e3 },
];
/** The same shape at 1/64 of the size, for quick mode. */
const MIXED_TREE_QUICK: readonly FileGroup[] = MIXED_TREE.map(({ count, bytes }) => ({
  count: Math.max(1, Math.round(count / 8)),
  bytes: Math.round(bytes / 8),
}));

/**
 * Pulls `payload` with each of `tools` (default: the standard peers) and checks the figure of
 * `subject` (default teleport's) against the others.
 */
async function run(
  context: BenchContext,
  payload: Payload,
  checks: (subject: Figure, byTool: Map<string, Figure>) => Check[],
  options: { tools?: TransferTool[]; subject?: string } = {},
): Promise<BenchOutcome> {
  // Quick mode keeps CI short: scp (whose sshd start costs seconds) only where a target names it.
  const tools =
    options.tools ??
    standardTools(context.quick).filter(
      (tool) => !context.quick || payload.files === 1 || tool.name !== "scp",
    );
  const comparison = await compareTransfers(context, payload, tools);
  const byTool = new Map(comparison.figures.map((entry) => [entry.tool, entry]));
  const subject = byTool.get(options.subject ?? "teleport");
  if (subject === undefined) {
    return { status: "failed", reason: comparison.notes.join("; ") || "teleport produced no figure" };
  }
  return {
    status: "ok",
    figures: comparison.figures,
    ratios: comparison.ratios,
    checks: checks(subject, byTool),
    notes: comparison.notes,
    details: {
      payload: { name: payload.name, bytes: payload.bytes, files: payload.files },
      pullReports: comparison.reports,
    },
  };
}

/** "faster than X", "N x faster than X", unmet when X has no figure in this run. */
function fasterThan(teleport: Figure, peer: Figure | undefined, factor = 1): Check {
  const label = factor === 1 ? "faster than" : `>= ${factor}x faster than`;
  if (peer === undefined) return { description: `${label} a peer that did not run`, met: false };
  const ratio = peer.median / teleport.median;
  return { description: `${label} ${peer.tool}: ${ratio.toFixed(2)}x`, met: ratio >= factor };
}

export const bulk1GiB: Benchmark = {
  name: "bulk_1gib",
  title: "cold pull of one 1 GiB random file (quick: 128 MiB)",
  target: "faster than the rsync daemon, >= 3x faster than scp (issue 2: >= 1.5x)",
  quick: true,
  packages: PEER_PACKAGES,
  run: async (context) => {
    const bytes = context.quick ? 128 * MiB : 1024 * MiB;
    const payload = await ensureRandomFile(join(context.workDir, `file-${bytes / MiB}m`, "file.bin"), bytes);
    return run(context, payload, (teleport, byTool) => [
      fasterThan(teleport, byTool.get("rsync-daemon")),
      fasterThan(teleport, byTool.get("scp"), 3),
      fasterThan(teleport, byTool.get("scp"), 1.5),
      peakRssCheck(teleport),
    ]);
  },
};

export const bulkTree: Benchmark = {
  name: "bulk_tree",
  title: "cold pull of a 2 GB mixed tree, 6,265 files of 1 KB-200 MB (quick: 1/64 of it)",
  target: "faster than the rsync daemon",
  quick: true,
  packages: PEER_PACKAGES,
  run: async (context) => {
    const groups = context.quick ? MIXED_TREE_QUICK : MIXED_TREE;
    const payload = await ensureRandomTree(
      join(context.workDir, "trees"),
      context.quick ? "mixed-quick" : "mixed",
      groups,
    );
    return run(context, payload, (teleport, byTool) => [
      fasterThan(teleport, byTool.get("rsync-daemon")),
      peakRssCheck(teleport),
    ]);
  },
};

export const manySmall: Benchmark = {
  name: "many_small",
  title: "cold pull of 20,000 files of 10 KB (quick: 1,000)",
  target: ">= 10,000 files/s and faster than the rsync daemon",
  quick: true,
  packages: PEER_PACKAGES,
  run: async (context) => {
    const count = context.quick ? 1000 : 20_000;
    const payload = await ensureRandomTree(
      join(context.workDir, "trees"),
      `small-${count}`,
      [{ count, bytes: 10_000 }],
      1000,
    );
    return run(context, payload, (teleport, byTool) => {
      const filesPerSecond = payload.files / teleport.median;
      return [
        {
          description: `>= 10,000 files/s: ${Math.round(filesPerSecond)} files/s`,
          met: filesPerSecond >= 10_000,
        },
        fasterThan(teleport, byTool.get("rsync-daemon")),
      ];
    });
  },
};

function peakRssCheck(teleport: Figure): Check {
  const client = teleport.clientPeakRssBytes ?? null;
  const server = teleport.serverPeakRssBytes ?? null;
  if (client === null || server === null)
    return { description: "peak RSS < 150 MB: not measured", met: false };
  const peak = Math.max(client, server);
  return { description: `peak RSS < 150 MB either side: ${(peak / 1e6).toFixed(0)} MB`, met: peak < 150e6 };
}

/**
 * A 10 GiB sparse file with 10 MiB of data in 10 pieces (quick: 1 GiB, 1 MiB): teleport skips
 * its holes (SEEK_DATA/SEEK_HOLE on the host; nothing read, sent or written for them) and leaves
 * them holes; rsync -S finds them by reading and comparing the zeros.
 */
export const sparseFile: Benchmark = {
  name: "sparse_10g",
  title: "cold pull of a 10 GiB sparse file with 10 MiB of data (quick: 1 GiB, 1 MiB)",
  target: "well under a second, sparse at the destination (rsync -S beside it)",
  quick: true,
  packages: ["rsync"],
  run: async (context) => {
    const bytes = context.quick ? 1024 * MiB : 10 * 1024 * MiB;
    const dataBytes = context.quick ? MiB : 10 * MiB;
    const payload = await ensureSparseFile(
      join(context.workDir, `sparse-${bytes / MiB}m`, "sparse.img"),
      bytes,
      dataBytes,
      10,
    );
    const tools = [teleportTool(), rsyncDaemonWith("rsync-daemon -S", ["-S"])];
    return run(
      context,
      payload,
      (teleport) => {
        const allocated = Number(teleport.details?.allocatedBytes ?? Number.NaN);
        return [
          { description: `under a second: ${teleport.median.toFixed(3)} s`, met: teleport.median < 1 },
          {
            description: `sparse at the destination: ${(allocated / MiB).toFixed(1)} MiB on disk for ${(dataBytes / MiB).toFixed(0)} MiB of data`,
            met: allocated <= 2 * dataBytes + MiB,
          },
        ];
      },
      { tools },
    );
  },
};

/**
 * The trusted-network mode against the fastest plaintext peer: `--no-encryption` data streams,
 * sent by the host with sendfile from the page cache (still authenticated and BLAKE3-verified),
 * beside the rsync daemon and teleport's own TLS pull of the same file.
 */
export const plaintext1GiB: Benchmark = {
  name: "plaintext_1gib",
  title: "cold pull of one 1 GiB random file with --no-encryption (quick: 128 MiB)",
  target: ">= 1.5x the rsync daemon (issue 9)",
  quick: true,
  packages: ["rsync"],
  run: async (context) => {
    const bytes = context.quick ? 128 * MiB : 1024 * MiB;
    const payload = await ensureRandomFile(join(context.workDir, `file-${bytes / MiB}m`, "file.bin"), bytes);
    const plaintext = teleportTool({
      name: "teleport --no-encryption",
      hostArgs: ["--allow-no-encryption"],
      pullArgs: ["--no-encryption"],
    });
    const tls = teleportTool({ name: "teleport (TLS)", role: "peer" });
    return run(
      context,
      payload,
      (subject, byTool) => [
        fasterThan(subject, byTool.get("rsync-daemon"), 1.5),
        fasterThan(subject, byTool.get(tls.name)),
        peakRssCheck(subject),
      ],
      { tools: [plaintext, tls, rsyncDaemonTool], subject: plaintext.name },
    );
  },
};

export const transferBenchmarks: Benchmark[] = [bulk1GiB, bulkTree, manySmall, sparseFile, plaintext1GiB];
