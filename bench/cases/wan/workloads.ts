/**
 * What a WAN does to payloads other than one large file: a tree of many small files (per-file
 * round trips would show), and a compressible source tree (where the link is the limit, what
 * compression saves in bytes it should save in time). Each against the rsync daemon.
 */
import { join } from "node:path";
import { describeLink, type LinkSettings } from "../../lib/netsim.js";
import { ensureRandomFile, ensureRandomTree } from "../../lib/payload.js";
import type { Benchmark, BenchOutcome, Ratio } from "../../lib/types.js";
import { sourceTree } from "../compression.js";
import { fixedContender } from "./contender.js";
import { type SharedPayload, wanPayloadDir } from "./ladder.js";
import { type LinkRun, ONE_GBIT_50MS, onLink, requireFigures, WAN_PACKAGES } from "./on-link.js";
import { pullWithRsync, pullWithTeleport } from "./session.js";

/** many_small's tree, and one file of the same bytes beside it. */
const SMALL_FILES = { count: 20_000, bytes: 10_000 } as const;

/**
 * The same bytes as 20,000 files of 10 KB and as one file, over 1 Gbit/s at 50 ms RTT: per-file
 * round trips would show here as a tree taking many times the file's time (20,000 x 50 ms is
 * 1,000 s). rsync, which pipelines its file list, pulls both too, for comparison.
 */
export const wanManySmall: Benchmark = {
  name: "wan_many_small",
  title: `20,000 files of 10 KB against one file of the same 200 MB, ${describeLink(ONE_GBIT_50MS)}`,
  target: "the tree within 2x of the time of the one file",
  quick: false,
  packages: WAN_PACKAGES,
  run: async (context) => {
    const dir = wanPayloadDir(context.workDir);
    const name = `small-${SMALL_FILES.count}`;
    const tree: SharedPayload = { name, payload: await ensureRandomTree(dir, name, [SMALL_FILES], 1000) };
    const oneFileName = `${name}-as-one-file.bin`;
    const oneFile: SharedPayload = {
      name: oneFileName,
      payload: await ensureRandomFile(join(dir, oneFileName), SMALL_FILES.count * SMALL_FILES.bytes),
    };
    return onLink("wan_many_small", ONE_GBIT_50MS, context, {
      contenders: (session) => {
        const teleport = (tool: string, payload: SharedPayload) =>
          fixedContender(tool, "subject", () => pullWithTeleport(session, payload));
        const daemon = session.rsyncDaemon;
        const rsync = (tool: string, payload: SharedPayload) =>
          daemon === null
            ? []
            : [fixedContender(tool, "peer", () => pullWithRsync(session, daemon, payload))];
        return [
          teleport("teleport (tree)", tree),
          teleport("teleport (one file)", oneFile),
          ...rsync("rsync-daemon (tree)", tree),
          ...rsync("rsync-daemon (one file)", oneFile),
        ];
      },
      report: manySmallOutcome,
    });
  },
};

function manySmallOutcome(run: LinkRun): BenchOutcome {
  const required = requireFigures(run, ["teleport (tree)", "teleport (one file)"]);
  if ("failed" in required) return required.failed;
  const [tree, oneFile] = required.figures;
  // Same bytes: the ratio of times is the inverse ratio of throughputs.
  const slowdown = oneFile.median / tree.median;
  const ratios: Ratio[] = [
    { name: "teleport: tree time / one-file time", value: slowdown },
    { name: "teleport tree throughput / link rate", value: tree.median / ONE_GBIT_50MS.rateMbit },
  ];
  const rsyncTree = run.byTool.get("rsync-daemon (tree)");
  const rsyncFile = run.byTool.get("rsync-daemon (one file)");
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
    figures: run.figures,
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

const AUTO = "teleport (auto)";
const ON = "teleport --compress on";
const OFF = "teleport --compress off";

/**
 * A real source tree (see compress_text) over a 50 ms link: where the link is the limit, what
 * compression saves in bytes it should save in time. rsync -z (zstd) beside it.
 */
export function compressTextWan(name: string, settings: LinkSettings): Benchmark {
  return {
    name,
    title: `a real source tree (node_modules), ${describeLink(settings)}, compression on, off and auto`,
    target: "auto (and on) >= 2x faster than off",
    quick: false,
    packages: WAN_PACKAGES,
    run: async (context) => {
      const dir = wanPayloadDir(context.workDir);
      const tree: SharedPayload = {
        name: "source-tree",
        payload: await sourceTree(context, dir, "source-tree"),
      };
      return onLink(name, settings, context, {
        contenders: (session) => {
          const teleport = (tool: string, args: string[]) =>
            fixedContender(tool, "subject", () => pullWithTeleport(session, tree, args));
          const contenders = [
            teleport(AUTO, []),
            teleport(ON, ["--compress", "on"]),
            teleport(OFF, ["--compress", "off"]),
          ];
          const daemon = session.rsyncDaemon;
          if (daemon !== null) {
            contenders.push(
              fixedContender("rsync-daemon", "peer", () => pullWithRsync(session, daemon, tree)),
              fixedContender("rsync-daemon -z (zstd)", "peer", () =>
                pullWithRsync(session, daemon, tree, ["-z", "--compress-choice=zstd"]),
              ),
            );
          }
          return contenders;
        },
        report: compressTextWanOutcome,
      });
    },
  };
}

function compressTextWanOutcome(run: LinkRun): BenchOutcome {
  const required = requireFigures(run, [AUTO, ON, OFF]);
  if ("failed" in required) return required.failed;
  const [auto, on, off] = required.figures;
  // Figures are Mbit/s of payload: same bytes, so a throughput ratio is a speed-up.
  const ratios: Ratio[] = [
    { name: "auto vs off (speed-up)", value: auto.median / off.median },
    { name: "on vs off (speed-up)", value: on.median / off.median },
  ];
  const rsyncZ = run.byTool.get("rsync-daemon -z (zstd)");
  if (rsyncZ !== undefined)
    ratios.push({ name: "auto vs rsync -z (throughput)", value: auto.median / rsyncZ.median });
  return {
    status: "ok",
    figures: run.figures,
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
