/**
 * What is measured on each mount, a fresh mount per measurement (its mountpoint removed after;
 * the re-read shares the cold read's): sequential reads of the file cold, re-read and warm, the
 * first byte and random 4 KiB reads of it, and over the tree `find -type f | wc -l`, a stat of
 * every file and `grep -r`; for teleport also the physical limits of the sequential reads (the
 * disk, `teleport pull`). Every command's answer is checked against the server's folder, so a
 * fast wrong mount never scores.
 */
import { mkdtempSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type CommandSpec, cappedCommand, measureCommand } from "../../lib/measure.js";
import {
  type CacheState,
  dropPageCache,
  type MountedFolder,
  type MountTool,
  type UnmountReport,
} from "../../lib/mounts.js";
import type { RandomReadReport } from "../../lib/random-reads.js";
import { quantile } from "../../lib/stats.js";
import { parsePullReport } from "../../lib/teleport.js";
import type { MountContender, MountSession, PhysicalLimits, TreeUnderTest } from "./session.js";

/** A command still running after this is ended and counts as failed: hung, not slow. */
const RUN_CAP_SECONDS = 900;
/** The same offsets on every mount and run. */
const RANDOM_SEED = 25;
/** Present in a few dozen files of the Linux tree; grep -o counts each, reading every file whole. */
export const GREP_NEEDLE = "Linus Torvalds";

/**
 * `tool`: a figure of something else than the contender measured in its round (the physical
 * limits teleport is judged against); `role` limit.
 */
export const METRICS: Record<
  | "sequentialCold"
  | "rereadSameMount"
  | "warmCacheInMemory"
  | "sequentialWarm"
  | "diskRead"
  | "cacheFilesRead"
  | "pullCold"
  | "firstByte"
  | "randomP50"
  | "randomP99"
  | "treeMount"
  | "find"
  | "stat"
  | "grep",
  { name: string; unit: string; better: "higher" | "lower"; tool?: string }
> = {
  sequentialCold: { name: "sequential read cold (fresh mount, empty cache)", unit: "MB/s", better: "higher" },
  rereadSameMount: {
    name: "sequential re-read in the same mount (kernel page cache)",
    unit: "MB/s",
    better: "higher",
  },
  warmCacheInMemory: {
    name: "sequential read warm: remount, cache kept, page cache kept (cache in memory)",
    unit: "MB/s",
    better: "higher",
  },
  sequentialWarm: {
    name: "sequential read warm: remount, cache kept, page cache dropped (cache on disk)",
    unit: "MB/s",
    better: "higher",
  },
  diskRead: {
    name: "disk: dd of a file of the same size beside the cache, page cache dropped",
    unit: "MB/s",
    better: "higher",
    tool: "dd (limit)",
  },
  cacheFilesRead: {
    name: "the cache's own files read back, 8 at a time, page cache dropped",
    unit: "MB/s",
    better: "higher",
    tool: "cat of the cache (limit)",
  },
  pullCold: {
    name: "teleport pull of the same file (cold)",
    unit: "MB/s",
    better: "higher",
    tool: "teleport pull (limit)",
  },
  firstByte: { name: "first byte", unit: "ms", better: "lower" },
  randomP50: { name: "random 4 KiB p50", unit: "ms", better: "lower" },
  randomP99: { name: "random 4 KiB p99", unit: "ms", better: "lower" },
  treeMount: { name: "mount of the tree", unit: "s", better: "lower" },
  find: { name: "find -type f, counted (mount included)", unit: "s", better: "lower" },
  stat: { name: "stat of every file (mount included)", unit: "s", better: "lower" },
  grep: { name: "grep -r (mount included)", unit: "s", better: "lower" },
};

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

/** What one round on a contender measured, and what a reader of its figures should know. */
export interface ContenderRound {
  sample: Map<MetricKey, number>;
  /** Where teleport's warm reads got their chunks, and how long each mount took to exit. */
  notes: string[];
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
): Promise<ContenderRound> {
  const sample = new Map<MetricKey, number>();
  const notes: string[] = [];
  const record = (key: MetricKey, value: number) => {
    sample.set(key, value);
    log(`${METRICS[key].name}: ${value.toFixed(METRICS[key].unit === "MB/s" ? 0 : 3)} ${METRICS[key].unit}`);
  };
  await sequentialReads(session, contender, record, (note) => notes.push(note));
  await randomReads(session, contender.file, record);
  if (contender.tree !== null && session.tree !== null && answers !== null)
    await treeWalks(session, contender.tree, session.tree, answers, record);
  return { sample, notes };
}

type RecordValue = (key: MetricKey, value: number) => void;

/**
 * The file read whole four ways, as users meet it: cold, then again in the same mount (the
 * kernel's page cache, which teleport keeps across opens and sshfs drops at open); after a
 * remount with the cache kept while its files are still in memory (a recent read); and after a
 * remount with the page cache dropped (the cache on disk). Beside them, for teleport, the
 * physical limits of the same run: the disk's read of as many bytes in one file and of the
 * cache's own files, and `teleport pull`.
 */
async function sequentialReads(
  session: MountSession,
  contender: MountContender,
  record: RecordValue,
  note: (note: string) => void,
): Promise<void> {
  const { file: tool, limits } = contender;
  const path = (mounted: MountedFolder) => join(mounted.path, session.file.name);
  const readWhole = async (mounted: MountedFolder) => ddRate(path(mounted), session.file.bytes);
  const cold = await useMount(session, tool, "empty", async (mounted) => {
    record("sequentialCold", await readWhole(mounted));
    record("rereadSameMount", await readWhole(mounted));
  });
  const inMemory = await useMount(session, tool, "kept", async (mounted) => {
    record("warmCacheInMemory", await readWhole(mounted));
  });
  dropPageCacheNoting(session);
  if (limits !== null) record("diskRead", await ddRate(limits.diskFile, session.file.bytes));
  const onDisk = await useMount(session, tool, "kept", async (mounted) => {
    record("sequentialWarm", await readWhole(mounted));
  });
  if (limits !== null) {
    const cache = limits.cacheFolder();
    if (cache !== null) {
      dropPageCacheNoting(session);
      record("cacheFilesRead", await filesReadRate(cache));
    }
    record("pullCold", await pullRate(session, limits));
  }
  note(
    [
      `cold: ${describeUnmount(cold.unmounted, false)}`,
      `warm, cache in memory: ${describeUnmount(inMemory.unmounted, true)}`,
      `warm, cache on disk: ${describeUnmount(onDisk.unmounted, true)}`,
    ].join("; "),
  );
}

/** MB/s of `dd bs=1M` reading `path` (`bytes` long) to its end. */
async function ddRate(path: string, bytes: number): Promise<number> {
  const started = performance.now();
  await run({ command: "dd", args: [`if=${path}`, "of=/dev/null", "bs=1M"] });
  return bytes / 1e6 / ((performance.now() - started) / 1000);
}

/**
 * MB/s of reading every file under `folder` to /dev/null, 8 at a time: what the disk gives the
 * cache's layout (many files, not one), whatever reads it.
 */
async function filesReadRate(folder: string): Promise<number> {
  const script = 'find "$1" -type f -printf "%s\\n" | awk "{ s += \\$1 } END { print s }"';
  const bytes = Number((await run({ command: "bash", args: ["-c", script, "size", folder] })).trim());
  const started = performance.now();
  await run({
    command: "bash",
    args: ["-c", 'find "$1" -type f -print0 | xargs -0 -P 8 -n 64 cat > /dev/null', "read", folder],
  });
  return bytes / 1e6 / ((performance.now() - started) / 1000);
}

/** MB/s of a cold `teleport pull` of the file, by the pull's own clock (its process start aside). */
async function pullRate(session: MountSession, limits: PhysicalLimits): Promise<number> {
  const scratch = mkdtempSync(join(session.scratch, "pull-"));
  try {
    const report = parsePullReport(await run(limits.pull(join(scratch, "into"), join(scratch, "home"))));
    if (report.bytes !== session.file.bytes)
      throw new Error(`teleport pull brought ${report.bytes} bytes of ${session.file.bytes}`);
    return report.bytes / 1e6 / report.seconds;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function dropPageCacheNoting(session: MountSession): void {
  const notDropped = dropPageCache();
  if (notDropped !== null && !session.notes.includes(notDropped)) session.notes.push(notDropped);
}

/**
 * How long the mount took to exit after its unmount, and where teleport's reads got their chunks
 * (it reports that on exit): a warm read that fetched from the host was not warm.
 */
function describeUnmount(unmounted: MountUse, warm: boolean): string {
  const exit = unmounted.report.exitedByItself
    ? `exited ${unmounted.report.exitSeconds.toFixed(2)} s after its unmount`
    : `still running ${unmounted.report.exitSeconds.toFixed(0)} s after its unmount, signalled`;
  const counts = unmounted.logTail
    .split("\n")
    .find((line) => line.includes("chunks from"))
    ?.replace(/^teleport: /, "");
  if (counts === undefined) return exit;
  const fetched = Number(/from the host: (\d+)/.exec(counts)?.[1] ?? 0);
  return `${warm && fetched > 0 ? "NOT WARM: " : ""}${exit}, ${counts}`;
}

async function randomReads(session: MountSession, tool: MountTool, record: RecordValue): Promise<void> {
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
  record: RecordValue,
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

/** How a mount ended: its unmount, and the last lines its process wrote. */
interface MountUse {
  report: UnmountReport;
  logTail: string;
}

/** Mounts `tool` on a fresh mountpoint, runs `use`, unmounts; what `use` returned. */
async function withMount<T>(
  session: MountSession,
  tool: MountTool,
  cache: CacheState,
  use: (mounted: MountedFolder) => Promise<T>,
): Promise<T> {
  return (await useMount(session, tool, cache, use)).value;
}

/** withMount, and how the mount ended. */
async function useMount<T>(
  session: MountSession,
  tool: MountTool,
  cache: CacheState,
  use: (mounted: MountedFolder) => Promise<T>,
): Promise<{ value: T; unmounted: MountUse }> {
  const mountpoint = mkdtempSync(join(session.scratch, "mnt-"));
  const mounted = await tool.mount(mountpoint, cache);
  try {
    const value = await use(mounted);
    const report = await mounted.unmount();
    return { value, unmounted: { report, logTail: mounted.logTail(10) } };
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
