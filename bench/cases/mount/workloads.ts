/**
 * What is measured on each mount, one fresh mount per measurement (its mountpoint removed after):
 * sequential reads of the file cold and warm, the first byte and random 4 KiB reads of it, and
 * over the tree `find -type f | wc -l`, a stat of every file and `grep -r`. Every command's answer
 * is checked against the server's folder, so a fast wrong mount never scores.
 */
import { mkdtempSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type CommandSpec, cappedCommand, measureCommand } from "../../lib/measure.js";
import { type CacheState, dropPageCache, type MountedFolder, type MountTool } from "../../lib/mounts.js";
import type { RandomReadReport } from "../../lib/random-reads.js";
import { quantile } from "../../lib/stats.js";
import type { MountContender, MountSession, TreeUnderTest } from "./session.js";

/** A command still running after this is ended and counts as failed: hung, not slow. */
const RUN_CAP_SECONDS = 900;
/** The same offsets on every mount and run. */
const RANDOM_SEED = 25;
/** Present in a few dozen files of the Linux tree; grep -o counts each, reading every file whole. */
export const GREP_NEEDLE = "Linus Torvalds";

export const METRICS = {
  sequentialCold: { name: "sequential read cold", unit: "MB/s", better: "higher" },
  sequentialWarm: {
    name: "sequential read warm (cache kept, page cache dropped)",
    unit: "MB/s",
    better: "higher",
  },
  firstByte: { name: "first byte", unit: "ms", better: "lower" },
  randomP50: { name: "random 4 KiB p50", unit: "ms", better: "lower" },
  randomP99: { name: "random 4 KiB p99", unit: "ms", better: "lower" },
  treeMount: { name: "mount of the tree", unit: "s", better: "lower" },
  find: { name: "find -type f, counted (mount included)", unit: "s", better: "lower" },
  stat: { name: "stat of every file (mount included)", unit: "s", better: "lower" },
  grep: { name: "grep -r (mount included)", unit: "s", better: "lower" },
} as const;

export type MetricKey = keyof typeof METRICS;

/** What the tree workloads must answer, computed once on the server's folder. */
export interface TreeAnswers {
  statList: string;
  grepCount: number;
}

export async function treeAnswers(session: MountSession, tree: TreeUnderTest): Promise<TreeAnswers> {
  const statList = join(session.scratch, "stat-list");
  writeFileSync(statList, `${tree.files.join("\0")}\0`);
  const grep = await run(grepCommand(tree.serverPath));
  return { statList, grepCount: Number(grep.trim()) };
}

/**
 * Every workload of one round on `contender`: metric -> value. `answers` null: the file workloads
 * only (a warm-up: the tree is in memory on the server already, and walking it is the long part).
 */
export async function measureContender(
  session: MountSession,
  contender: MountContender,
  answers: TreeAnswers | null,
  log: (message: string) => void,
): Promise<Map<MetricKey, number>> {
  const sample = new Map<MetricKey, number>();
  const record = (key: MetricKey, value: number) => {
    sample.set(key, value);
    log(`${METRICS[key].name}: ${value.toFixed(METRICS[key].unit === "MB/s" ? 0 : 3)} ${METRICS[key].unit}`);
  };
  await sequentialReads(session, contender.file, record);
  await randomReads(session, contender.file, record);
  if (contender.tree !== null && session.tree !== null && answers !== null)
    await treeWalks(session, contender.tree, session.tree, answers, record);
  return sample;
}

type Record = (key: MetricKey, value: number) => void;

async function sequentialReads(session: MountSession, tool: MountTool, record: Record): Promise<void> {
  const file = session.file;
  let lastMount: MountedFolder | undefined;
  const read = async (cache: CacheState) =>
    withMount(session, tool, cache, async (mounted) => {
      lastMount = mounted;
      const started = performance.now();
      await run({ command: "dd", args: [`if=${join(mounted.path, file.name)}`, "of=/dev/null", "bs=1M"] });
      return file.bytes / 1e6 / ((performance.now() - started) / 1000);
    });
  record("sequentialCold", await read("empty"));
  const notDropped = dropPageCache();
  if (notDropped !== null && !session.notes.includes(notDropped)) session.notes.push(notDropped);
  record("sequentialWarm", await read("kept"));
  // Where the warm read's chunks came from, as teleport mount reports it on exit: the proof
  // that "warm" crossed no network.
  const counts = lastMount
    ?.logTail(5)
    .split("\n")
    .find((line) => line.includes("chunks from"));
  const note =
    counts === undefined ? undefined : `${tool.tool} warm read: ${counts.replace(/^teleport: /, "")}`;
  if (note !== undefined && !session.notes.includes(note)) session.notes.push(note);
}

async function randomReads(session: MountSession, tool: MountTool, record: Record): Promise<void> {
  const report = await withMount(session, tool, "empty", async (mounted) => {
    const output = await run({
      command: process.execPath,
      args: [
        READER,
        join(mounted.path, session.file.name),
        String(session.scale.randomReads),
        String(RANDOM_SEED),
      ],
    });
    return JSON.parse(output) as RandomReadReport;
  });
  record("firstByte", report.firstByteMs);
  record("randomP50", quantile(report.latenciesMs, 0.5));
  record("randomP99", quantile(report.latenciesMs, 0.99));
}

const READER = fileURLToPath(new URL("../../lib/random-reads.js", import.meta.url));

async function treeWalks(
  session: MountSession,
  tool: MountTool,
  tree: TreeUnderTest,
  answers: TreeAnswers,
  record: Record,
): Promise<void> {
  // Each walk on a fresh mount with an empty cache, timed from the mount command on: a mount
  // that lists the tree up front pays for it here.
  const walk = (check: (mountpoint: string) => Promise<void>) => {
    const started = performance.now();
    return withMount(session, tool, "empty", async (mounted) => {
      await check(mounted.path);
      return { mountSeconds: mounted.mountSeconds, seconds: (performance.now() - started) / 1000 };
    });
  };
  const find = await walk(async (path) => {
    const count = Number(
      (await run({ command: "bash", args: ["-c", 'find "$1" -type f | wc -l', "find", path] })).trim(),
    );
    if (count !== tree.files.length)
      throw new Error(`find counted ${count} files, the server has ${tree.files.length}`);
  });
  record("treeMount", find.mountSeconds);
  record("find", find.seconds);
  const stat = await walk(async (path) => {
    const script = 'cd "$1" && xargs -0 -a "$2" stat -c %s -- | wc -l';
    const count = Number(
      (await run({ command: "bash", args: ["-c", script, "stat", path, answers.statList] })).trim(),
    );
    if (count !== tree.files.length)
      throw new Error(`stat answered for ${count} files of ${tree.files.length}`);
  });
  record("stat", stat.seconds);
  const grep = await walk(async (path) => {
    const count = Number((await run(grepCommand(path))).trim());
    if (count !== answers.grepCount)
      throw new Error(`grep -r found ${count} matches, ${answers.grepCount} on the server`);
  });
  record("grep", grep.seconds);
}

function grepCommand(path: string): CommandSpec {
  // -o: one line per match, so every file is read to its end; 1 (no match) is not an error.
  // biome-ignore lint/suspicious/noTemplateCurlyInString: ${PIPESTATUS} is bash's, not a template.
  const script = 'grep -r -F -o -- "$2" "$1" | wc -l; exit "${PIPESTATUS[0]/1/0}"';
  return { command: "bash", args: ["-c", script, "grep", path, GREP_NEEDLE] };
}

/** Mounts `tool` on a fresh mountpoint, runs `use`, unmounts. */
async function withMount<T>(
  session: MountSession,
  tool: MountTool,
  cache: CacheState,
  use: (mounted: MountedFolder) => Promise<T>,
): Promise<T> {
  const mountpoint = mkdtempSync(join(session.scratch, "mnt-"));
  const mounted = await tool.mount(mountpoint, cache);
  try {
    return await use(mounted);
  } finally {
    await mounted.unmount();
    // Not recursive: should the unmount have failed, nothing may walk into the mount.
    rmdirSync(mountpoint);
  }
}

/** Runs `spec` to its end; its stdout, or an error with its stderr when it did not exit 0. */
async function run(spec: CommandSpec): Promise<string> {
  const usage = await measureCommand(cappedCommand(spec, RUN_CAP_SECONDS));
  if (usage.exitCode !== 0) {
    const why =
      usage.exitCode === 124 ? `still running after ${RUN_CAP_SECONDS} s` : `exit ${usage.exitCode}`;
    throw new Error(`${spec.command} ${spec.args.join(" ")}: ${why}: ${usage.stderr.trim().slice(-400)}`);
  }
  return usage.stdout;
}
