/**
 * Start-up: how long `teleport --version`, `teleport --help` and `teleport ls LINK` (a host on
 * loopback, a folder of a few files) take, beside `node -e 0` run the same way in the same
 * rounds. What teleport adds to Node's own start is what its modules cost to load. Measured in
 * CPU seconds (user + system, GNU time) where there are, which a busy machine disturbs far less
 * than wall-clock time; wall-clock seconds otherwise.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { measureCommand } from "../lib/measure.js";
import { makeTempDir } from "../lib/processes.js";
import { figure, median } from "../lib/stats.js";
import { startTeleportHost } from "../lib/teleport.js";
import type { BenchContext, Benchmark, BenchOutcome, Check, Figure, Ratio } from "../lib/types.js";

/** What a command may add to `node -e 0` (issue 21). */
const EXTRA_SECONDS_LIMIT = 0.1;

interface Subject {
  tool: string;
  args: (link: string) => string[];
  /** Held to EXTRA_SECONDS_LIMIT. */
  judged: boolean;
}

export const startup: Benchmark = {
  name: "startup",
  title: "start-up of teleport --version, --help and ls LINK beside node -e 0",
  target: `--version and ls LINK within ${EXTRA_SECONDS_LIMIT} s of node -e 0 (medians)`,
  quick: true,
  run: measureStartup,
};

async function measureStartup(context: BenchContext): Promise<BenchOutcome> {
  const scratch = makeTempDir("startup");
  const share = join(scratch.path, "share");
  mkdirSync(share);
  for (let i = 0; i < 5; i++) writeFileSync(join(share, `file-${i}.txt`), `file ${i}\n`);
  const host = await startTeleportHost(context.cli, share);
  const subjects: Subject[] = [
    { tool: "node -e 0", args: () => ["-e", "0"], judged: false },
    { tool: "teleport --version", args: () => [context.cli, "--version"], judged: true },
    { tool: "teleport --help", args: () => [context.cli, "--help"], judged: false },
    { tool: "teleport ls LINK", args: (link) => [context.cli, "ls", link], judged: true },
  ];
  const samples = subjects.map(() => [] as number[]);
  try {
    // Interleaved, so that a busy moment on the machine costs every command alike.
    const rounds = Math.max(context.runs, context.quick ? 5 : 10);
    for (let round = 0; round <= rounds; round++) {
      for (const [i, subject] of subjects.entries()) {
        const run = await measureCommand({ command: process.execPath, args: subject.args(host.link) });
        if (run.exitCode !== 0) throw new Error(`${subject.tool} failed: ${run.stderr.trim().slice(-500)}`);
        if (round > 0) samples[i]?.push(run.cpuSeconds ?? run.wallSeconds); // round 0 warms the page cache
      }
    }
  } finally {
    await host.stop();
    scratch.remove();
  }
  return startupOutcome(subjects, samples);
}

function startupOutcome(subjects: readonly Subject[], samples: readonly number[][]): BenchOutcome {
  const figures: Figure[] = subjects.map((subject, i) =>
    figure(
      { tool: subject.tool, role: i === 0 ? "limit" : "subject", metric: "CPU seconds", better: "lower" },
      samples[i] ?? [],
    ),
  );
  const nodeSeconds = median(samples[0] ?? []);
  const ratios: Ratio[] = [];
  const checks: Check[] = [];
  for (const [i, subject] of subjects.entries()) {
    if (i === 0) continue;
    const seconds = median(samples[i] ?? []);
    ratios.push({ name: `${subject.tool} vs node -e 0`, value: nodeSeconds / seconds });
    if (!subject.judged) continue;
    const extra = seconds - nodeSeconds;
    checks.push({
      description: `${subject.tool} adds ${extra.toFixed(3)} s to node -e 0 (limit ${EXTRA_SECONDS_LIMIT} s)`,
      met: extra < EXTRA_SECONDS_LIMIT,
    });
  }
  return { status: "ok", figures, ratios, checks };
}
