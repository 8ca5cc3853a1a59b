/**
 * Compression on loopback: a real source tree (this project's node_modules: JavaScript, type
 * declarations, native binaries) and incompressible data (random bytes, and files of compressed
 * formats: gzip-compressed text named .zip, random bytes named .jpg), each pulled with
 * `--compress on`, `off` and `auto`, beside the rsync daemon. The wire bytes come from the pulls'
 * own reports. The WAN side, where compression pays in time, is compress_text_wan (wan/workloads.ts).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { deflateRawSync } from "node:zlib";
import { ensureBuiltTree, type Payload } from "../lib/payload.js";
import { median } from "../lib/stats.js";
import { compareTransfers, rsyncDaemonTool, teleportTool } from "../lib/transfer.js";
import type { BenchContext, Benchmark, BenchOutcome, Check, Figure, Ratio } from "../lib/types.js";

const MiB = 1024 * 1024;
const ON = "teleport --compress on";
const OFF = "teleport --compress off";
const AUTO = "teleport (auto)";
/** Run-to-run spread of loopback pulls here: "no slower" allows this much. */
const NOISE = 0.05;

/** A copy of this project's node_modules (quick: its typescript package) in `root/name`. */
export function sourceTree(context: BenchContext, root: string, name: string): Promise<Payload> {
  const source = join(context.repoRoot, "node_modules", ...(context.quick ? ["typescript"] : []));
  const lock = readFileSync(join(context.repoRoot, "package-lock.json"), "utf8");
  return ensureBuiltTree(root, name, `${source}\n${lock.length}`, (path) => {
    const copy = spawnSync("cp", ["-rH", source, path]); // -H: node_modules may be a symlink
    if (copy.status !== 0) throw new Error(`copying ${source}: ${copy.stderr}`);
  });
}

function denseTree(context: BenchContext): Promise<Payload> {
  const randomMiB = context.quick ? 16 : 64;
  const mediaFiles = context.quick ? 8 : 40;
  return ensureBuiltTree(
    join(context.workDir, "compress-random"),
    "tree",
    `${randomMiB}/${mediaFiles}/v1`,
    (path) => {
      mkdirSync(join(path, "media"), { recursive: true });
      writeFileSync(join(path, "random.bin"), randomBytes(randomMiB * MiB));
      for (let i = 0; i < mediaFiles; i++) {
        const text = Buffer.from(
          Array.from(
            { length: 40_000 },
            (_, line) => `${i}:${line} ${randomBytes(24).toString("base64")}\n`,
          ).join(""),
        );
        writeFileSync(
          join(path, "media", `archive-${i}.zip`),
          Buffer.concat([Buffer.from("PK\x03\x04"), deflateRawSync(text)]),
        );
        writeFileSync(
          join(path, "media", `photo-${i}.jpg`),
          Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(MiB)]),
        );
      }
    },
  );
}

const TOOLS = [
  teleportTool({ name: ON, pullArgs: ["--compress", "on"] }),
  teleportTool({ name: OFF, pullArgs: ["--compress", "off"] }),
  teleportTool({ name: AUTO }),
  rsyncDaemonTool,
];

interface Measured {
  figures: Figure[];
  ratios: Ratio[];
  notes: string[];
  /** Median seconds by tool. */
  seconds: Map<string, number>;
  /** Payload bytes over bytes on the wire, `--compress on`. */
  wireRatio: number;
}

async function measure(context: BenchContext, payload: Payload): Promise<Measured> {
  const comparison = await compareTransfers(context, payload, TOOLS);
  const seconds = new Map(comparison.figures.map((entry) => [entry.tool, entry.median]));
  for (const name of [ON, OFF, AUTO]) {
    if (!seconds.has(name)) throw new Error(`${name} produced no figure: ${comparison.notes.join("; ")}`);
  }
  const reports = (comparison.reportsByTool.get(ON) ?? []).filter((report) => report !== undefined);
  const wireRatio = median(reports.map((report) => report.bytesFromNetwork / report.bytesOnWire));
  const ratios: Ratio[] = [
    { name: "bytes / bytes on the wire, --compress on", value: wireRatio },
    { name: "time off / time on", value: (seconds.get(OFF) as number) / (seconds.get(ON) as number) },
    { name: "time off / time auto", value: (seconds.get(OFF) as number) / (seconds.get(AUTO) as number) },
  ];
  return { figures: comparison.figures, ratios, notes: comparison.notes, seconds, wireRatio };
}

function notSlower(seconds: Map<string, number>, name: string): Check {
  const ratio = (seconds.get(name) as number) / (seconds.get(OFF) as number);
  return {
    description: `${name} takes ${ratio.toFixed(3)}x the time of --compress off (<= ${1 + NOISE}, this machine's noise)`,
    met: ratio <= 1 + NOISE,
  };
}

export const compressText: Benchmark = {
  name: "compress_text",
  title: "a real source tree (node_modules; quick: its typescript package) on loopback",
  target: ">= 2.5x fewer bytes on the wire with --compress on; auto no slower than off on loopback",
  quick: true,
  packages: ["rsync"],
  run: async (context): Promise<BenchOutcome> => {
    const result = await measure(
      context,
      await sourceTree(context, join(context.workDir, "compress-text"), "tree"),
    );
    const checks: Check[] = [
      {
        description: `--compress on: ${result.wireRatio.toFixed(2)}x fewer bytes on the wire (>= 2.5)`,
        met: result.wireRatio >= 2.5,
      },
      notSlower(result.seconds, AUTO),
    ];
    return { status: "ok", figures: result.figures, ratios: result.ratios, checks, notes: result.notes };
  },
};

export const compressRandom: Benchmark = {
  name: "compress_random",
  title: "random data and files of compressed formats (.zip, .jpg) on loopback",
  target: "--compress on <= 2% slower than off (5% with this machine's noise), no chunk sent compressed",
  quick: true,
  packages: ["rsync"],
  run: async (context): Promise<BenchOutcome> => {
    const result = await measure(context, await denseTree(context));
    const checks: Check[] = [
      {
        description: `no chunk compressed: wire ratio ${result.wireRatio.toFixed(4)} (<= 1)`,
        met: result.wireRatio <= 1,
      },
      notSlower(result.seconds, ON),
    ];
    return { status: "ok", figures: result.figures, ratios: result.ratios, checks, notes: result.notes };
  },
};
