/**
 * real_tree_cold: the next release pulled cold into tmpfs by teleport, the rsync daemon, rsync
 * over ssh and the rsync daemon with -z, with bytes on the wire as each tool reports them.
 */
import { compareTransfers, rsyncDaemonWith, rsyncSshWith, teleportTool } from "../../lib/transfer.js";
import type { Benchmark, Check, Figure } from "../../lib/types.js";
import { describeTree, fasterThan, realTree, runsFor } from "./trees.js";

const CLIENT_RSS_LIMIT = 150e6;

export const realTreeCold: Benchmark = {
  name: "real_tree_cold",
  title: "cold pull of a real tree, linux-source-6.1 (78,600 files, 1.3 GB; quick: postgresql-doc-15)",
  target: ">= the rsync daemon's speed, >= 1.5x rsync over ssh, client RSS < 150 MB",
  quick: true,
  packages: ["rsync", "openssh-server", "openssh-client"],
  run: async (context) => {
    const tree = await realTree(context);
    if ("unavailable" in tree) return { status: "skipped", reason: tree.unavailable };
    const tools = [
      teleportTool(),
      rsyncDaemonWith("rsync-daemon", ["--stats"]),
      rsyncSshWith("rsync-ssh", ["--stats"]),
      rsyncDaemonWith("rsync-daemon -z", ["-z", "--stats"]),
    ];
    const comparison = await compareTransfers(runsFor(context), tree.next, tools);
    const byTool = new Map(comparison.figures.map((entry) => [entry.tool, entry]));
    const teleport = byTool.get("teleport");
    if (teleport === undefined)
      return { status: "failed", reason: comparison.notes.join("; ") || "teleport produced no figure" };
    const rsync = byTool.get("rsync-daemon");
    const ratios = [...comparison.ratios];
    if (rsync?.clientCpuSeconds && teleport.clientCpuSeconds)
      ratios.push({
        name: "client CPU vs rsync-daemon",
        value: rsync.clientCpuSeconds / teleport.clientCpuSeconds,
      });
    return {
      status: "ok",
      figures: comparison.figures,
      ratios,
      checks: [
        fasterThan(teleport, rsync),
        fasterThan(teleport, byTool.get("rsync-ssh"), 1.5),
        clientRssCheck(teleport),
      ],
      notes: [
        describeTree(tree, "next"),
        wireBytesNote(comparison.figures),
        ...tree.notes,
        ...comparison.notes,
      ],
      details: {
        tree: tree.spec.package,
        version: tree.versions.next,
        files: tree.next.files,
        bytes: tree.next.bytes,
      },
    };
  },
};

/** Bytes on the wire per tool: teleport's bytesOnWire (chunk data), rsync's total bytes received. */
function wireBytesNote(figures: readonly Figure[]): string {
  const perTool = figures.map((entry) => {
    const bytes = entry.details?.wireBytes;
    return `${entry.tool} ${typeof bytes === "number" ? `${(bytes / 1e6).toFixed(1)} MB` : "not reported"}`;
  });
  return `bytes on the wire (medians): ${perTool.join(", ")}`;
}

function clientRssCheck(teleport: Figure): Check {
  const rss = teleport.clientPeakRssBytes ?? null;
  if (rss === null) return { description: "client peak RSS < 150 MB: not measured", met: false };
  return {
    description: `client peak RSS < 150 MB: ${(rss / 1e6).toFixed(0)} MB`,
    met: rss < CLIENT_RSS_LIMIT,
  };
}
