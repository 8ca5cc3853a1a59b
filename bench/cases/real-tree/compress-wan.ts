/**
 * compress_real_tree_wan: a text part of the Linux tree over netsim 100 Mbit/s, 50 ms RTT,
 * teleport --compress auto against the rsync daemon with -z, in payload rate.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { DebianTree } from "../../lib/debian-tree.js";
import { describeLink, type LinkSettings, whyNoNetsim } from "../../lib/netsim.js";
import { ensureBuiltTree, type Payload } from "../../lib/payload.js";
import type { Benchmark, BenchOutcome } from "../../lib/types.js";
import { fixedContender } from "../wan/contender.js";
import { type LinkRun, onLink, requireFigures, WAN_PACKAGES } from "../wan/on-link.js";
import { pullWithRsync, pullWithTeleport } from "../wan/session.js";
import { realTree } from "./trees.js";

/** The text part of the Linux tree the WAN run moves: ~250 MB, ~29,000 files, a minute a tool. */
const WAN_FOLDERS = ["arch", "fs", "include", "net", "sound"] as const;
const HUNDRED_MBIT_50MS: LinkSettings = { rateMbit: 100, delayMs: 25, loss: 0 };

/** `folders` of the next release, copied into a tree of their own (kept as the releases are). */
function textPart(tree: DebianTree, folders: readonly string[]): Promise<Payload> {
  const root = `${tree.next.root}-part`;
  return ensureBuiltTree(
    root,
    tree.next.name,
    JSON.stringify({ folders, digest: tree.next.digest }),
    (path) => {
      mkdirSync(path, { recursive: true });
      const copy = spawnSync("cp", ["-a", ...folders.map((folder) => join(tree.next.path, folder)), path], {
        encoding: "utf8",
      });
      if (copy.status !== 0) throw new Error(`copying part of ${tree.next.path}: ${copy.stderr}`);
    },
  );
}

const AUTO = "teleport --compress auto";
const RSYNC_Z = "rsync-daemon -z";

export const compressRealTreeWan: Benchmark = {
  name: "compress_real_tree_wan",
  title: `${WAN_FOLDERS.join(", ")} of linux-source-6.1 (~250 MB of text), ${describeLink(HUNDRED_MBIT_50MS)}`,
  target: "--compress auto >= rsync -z's payload rate",
  quick: false,
  packages: WAN_PACKAGES,
  run: async (context) => {
    // Before fetching gigabytes of tree for nothing.
    const noNetsim = whyNoNetsim(context.repoRoot);
    if (noNetsim !== null) return { status: "skipped", reason: noNetsim };
    const tree = await realTree(context);
    if ("unavailable" in tree) return { status: "skipped", reason: tree.unavailable };
    // Quick mode's tree is small already (and has no such folders).
    const part = context.quick ? tree.next : await textPart(tree, WAN_FOLDERS);
    const shared = { name: part.name, payload: part };
    const outcome = await onLink("compress_real_tree_wan", HUNDRED_MBIT_50MS, context, {
      sharedDir: part.root,
      contenders: (session) => {
        const contenders = [
          fixedContender(AUTO, "subject", () => pullWithTeleport(session, shared, ["--compress", "auto"])),
        ];
        const daemon = session.rsyncDaemon;
        if (daemon !== null)
          contenders.push(
            fixedContender(RSYNC_Z, "peer", () => pullWithRsync(session, daemon, shared, ["-z", "--stats"])),
          );
        return contenders;
      },
      report: compressOutcome,
    });
    if (outcome.status !== "ok") return outcome;
    const partNote = `${part.files} files, ${(part.bytes / 1e6).toFixed(0)} MB of ${tree.spec.package} ${tree.versions.next}`;
    return { ...outcome, notes: [partNote, ...tree.notes, ...(outcome.notes ?? [])] };
  },
};

function compressOutcome(run: LinkRun): BenchOutcome {
  const required = requireFigures(run, [AUTO]);
  if ("failed" in required) return required.failed;
  const [auto] = required.figures;
  const rsync = run.byTool.get(RSYNC_Z);
  if (rsync === undefined)
    return { status: "ok", figures: run.figures, ratios: [], checks: [], notes: ["rsync -z has no figure"] };
  const ratio = auto.median / rsync.median;
  return {
    status: "ok",
    figures: run.figures,
    // Figures are Mbit/s of tree bytes over wall time: the payload rate.
    ratios: [{ name: "payload rate vs rsync -z", value: ratio }],
    checks: [
      {
        description:
          `payload rate >= rsync -z's: ${auto.median.toFixed(0)} against ${rsync.median.toFixed(0)} Mbit/s ` +
          `(${ratio.toFixed(2)}x)`,
        met: ratio >= 1,
      },
    ],
  };
}
