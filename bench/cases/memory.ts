/**
 * Memory stays bounded whatever the size: peak RSS of the host and the client process while
 * pulling a 10 GiB file and a 200,000-file tree (quick: 128 MiB and 1,000 files).
 */
import { join } from "node:path";
import { ensureRandomFile, ensureRandomTree, type Payload } from "../lib/payload.js";
import { compareTransfers, teleportTool } from "../lib/transfer.js";
import type { BenchContext, Benchmark, BenchOutcome, Check, Figure, Ratio } from "../lib/types.js";

const MiB = 1024 * 1024;
const LIMIT_BYTES = 150e6;

/** One large file and one tree of `files` files of `fileBytes` each. */
async function fileAndTree(context: BenchContext, fileMiB: number, files: number, fileBytes: number) {
  return [
    await ensureRandomFile(join(context.workDir, `file-${fileMiB}m`, "file.bin"), fileMiB * MiB),
    await ensureRandomTree(
      join(context.workDir, "trees"),
      `small-${files}`,
      [{ count: files, bytes: fileBytes }],
      1000,
    ),
  ];
}

function payloads(context: BenchContext): Promise<Payload[]> {
  // targets.md: 10 GiB, and a 200,000-file tree (of 1 KB files: the count is what is tested).
  return context.quick ? fileAndTree(context, 128, 1000, 10_000) : fileAndTree(context, 10240, 200_000, 1000);
}

export const memory: Benchmark = {
  name: "memory",
  title:
    "peak RSS of host and client pulling a 10 GiB file and a 200,000-file tree (quick: 128 MiB, 1,000 files)",
  target: "< 150 MB either side",
  quick: true,
  run: async (context): Promise<BenchOutcome> => {
    const figures: Figure[] = [];
    const ratios: Ratio[] = [];
    const checks: Check[] = [];
    const notes: string[] = [];
    // Peak RSS is a maximum over the run, not a timing: one timed run after the warm-up does.
    const once = { ...context, runs: 1 };
    for (const payload of await payloads(context)) {
      const label =
        payload.files === 1 ? `${(payload.bytes / 2 ** 30).toFixed(2)} GiB file` : `${payload.files} files`;
      const comparison = await compareTransfers(once, payload, [teleportTool({ name: `teleport ${label}` })]);
      notes.push(...comparison.notes);
      const [result] = comparison.figures;
      if (result === undefined) return { status: "failed", reason: comparison.notes.join("; ") };
      figures.push(result);
      const peak = Math.max(result.clientPeakRssBytes ?? Number.NaN, result.serverPeakRssBytes ?? Number.NaN);
      ratios.push({
        name: `150 MB vs peak RSS, ${payload.files === 1 ? "file" : "tree"}`,
        value: LIMIT_BYTES / peak,
      });
      checks.push({
        description: `${label}: peak RSS ${(peak / 1e6).toFixed(0)} MB < 150 MB`,
        met: peak < LIMIT_BYTES,
      });
    }
    return { status: "ok", figures, ratios, checks, notes };
  },
};
