/**
 * The CLI's commands: thin wrappers that turn flags into library calls and results into output.
 */
import { mkdir, open, rmdir, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { defaultChunker } from "../chunking/chunker.js";
import { toHex } from "../chunking/hash.js";
import { chunkFile } from "../chunking/manifest.js";
import { TeleportClient } from "../client/client.js";
import { CompressionPolicy, type CompressMode } from "../client/pool/compression-policy.js";
import { type DryRunReport, dryRun } from "../client/pull/dry-run.js";
import type { ReuseScope } from "../client/pull.js";
import { type PullLinkOptions, type PullLinkSummary, pullLink } from "../client/pull-link.js";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { PathFilter } from "../filter/path-filter.js";
import { ChunkIndex } from "../store/chunk-index.js";
import type { TransportChoice } from "../transport/select.js";
import { FilterKind, type FilterRule } from "../wire/messages.js";
import { errorJson, printedInJson, StopSignals } from "./error-report.js";
import { teleportHome } from "./home.js";
import { createPullOutput, type PullOutput } from "./progress.js";
import { dryRunLines, leftOutLines, pullSummaryLine } from "./pull-report.js";
import { writeOut } from "./stdout.js";
import { jsonLine } from "./terminal-text.js";

export interface PullFlags {
  path?: string;
  json?: boolean;
  progress?: boolean;
  /** -v: a line per file as it completes. */
  verbose?: boolean;
  /** -q: nothing but errors. */
  quiet?: boolean;
  streams?: number;
  /** --bwlimit, in bytes per second. */
  bwlimit?: number;
  retries?: number;
  /** Idle timeout in seconds. */
  timeout?: number;
  compress?: CompressMode;
  compressLevel?: number;
  transport?: TransportChoice;
  /** Not a flag: `receive` sets 0 when it met the sender at a relay (its LAN address is then out of reach). */
  relayHeadStartMs?: number;
  xattrs?: boolean;
  /** false with --no-encryption. */
  encryption?: boolean;
  reuse?: ReuseScope;
  /** --exclude and --include: one list, in the order typed (both flags hold it). */
  exclude?: PullFilterFlag[];
  include?: PullFilterFlag[];
  delete?: boolean;
  dryRun?: boolean;
  /** Keep DEST a mirror as the host's folder changes (cli/watch-command.ts). */
  watch?: boolean;
}

/** One `--exclude` or `--include` as typed. */
export interface PullFilterFlag {
  kind: "exclude" | "include";
  pattern: string;
}

/** The rules in the order typed, each checked (USAGE for a pattern teleport does not take). */
export function filterRules(flags: Pick<PullFlags, "exclude" | "include">): FilterRule[] | undefined {
  const typed = flags.exclude ?? flags.include;
  if (typed === undefined || typed.length === 0) return undefined;
  const rules = typed.map(({ kind, pattern }) => ({
    kind: kind === "exclude" ? FilterKind.EXCLUDE : FilterKind.INCLUDE,
    pattern,
  }));
  PathFilter.compile(rules);
  return rules;
}

export async function pullCommand(link: string, dest: string, flags: PullFlags): Promise<void> {
  const plaintext = flags.encryption === false;
  if (dest === "")
    throw new TeleportError(
      ErrorCode.USAGE,
      'DEST is empty: name the folder to pull into ("." for this one)',
    );
  if (plaintext && flags.transport === "quic")
    throw new TeleportError(ErrorCode.USAGE, "--no-encryption is for TCP: QUIC is always encrypted");
  if (plaintext) {
    process.stderr.write(
      "teleport: warning: --no-encryption: the data crosses the network readable by anyone on it " +
        "(still authenticated and verified)\n",
    );
  }
  const quiet = flags.quiet === true;
  const filters = filterRules(flags);
  if (flags.dryRun === true) return dryRunCommand(link, resolve(dest), flags, filters);
  const index = openChunkIndex();
  const output = createPullOutput({
    progress: flags.progress !== false && flags.json !== true,
    verbose: flags.verbose === true && flags.json !== true,
    quiet,
  });
  const stopSignals = new StopSignals();
  const destPath = resolve(dest);
  let madeFrom: string | undefined;
  let summary: PullLinkSummary;
  try {
    madeFrom = await makeDestination(destPath);
    summary = await pullLink(link, {
      ...pullLinkOptions(flags, output),
      dest: destPath,
      signal: stopSignals.signal,
      index,
      ...(filters === undefined ? {} : { filters }),
      ...(flags.delete === true ? { delete: true } : {}),
    });
  } catch (err) {
    if (madeFrom !== undefined) await removeEmptyFolders(destPath, madeFrom);
    throw stopSignals.explain(err, "pull");
  } finally {
    stopSignals.stop();
    output.stop();
    index.close();
  }
  await reportPull(summary, { json: flags.json === true, quiet });
}

/** The pull's options as its flags give them; its events, notices and retries go to `output`. */
export function pullLinkOptions(flags: PullFlags, output: PullOutput): Omit<PullLinkOptions, "dest"> {
  const plaintext = flags.encryption === false;
  return {
    remotePath: flags.path ?? "",
    onProgress: (event) => output.onProgress(event),
    onNotice: (message) => output.notice(message),
    ...(flags.verbose === true ? { onDetail: (message: string) => output.notice(message) } : {}),
    ...(plaintext ? { plaintext, transport: "tcp" as const } : {}),
    ...(flags.transport === undefined || plaintext ? {} : { transport: flags.transport }),
    ...(flags.relayHeadStartMs === undefined ? {} : { relayHeadStartMs: flags.relayHeadStartMs }),
    ...(flags.xattrs === true ? { xattrs: true } : {}),
    ...(flags.reuse === undefined ? {} : { reuse: flags.reuse }),
    ...(flags.streams === undefined ? {} : { streams: flags.streams }),
    ...(flags.bwlimit === undefined ? {} : { bytesPerSecond: flags.bwlimit }),
    ...(flags.retries === undefined ? {} : { retries: flags.retries }),
    ...(flags.timeout === undefined ? {} : { idleTimeoutMs: flags.timeout * 1000 }),
    compression: new CompressionPolicy(flags.compress ?? "auto", flags.compressLevel),
  };
}

/**
 * `pull --dry-run`: what a pull would copy, reuse and delete, on stdout (one JSON line with
 * --json); nothing is written in DEST, which need not exist.
 */
async function dryRunCommand(
  link: string,
  dest: string,
  flags: PullFlags,
  filters: FilterRule[] | undefined,
): Promise<void> {
  const index = openChunkIndex();
  const stopSignals = new StopSignals();
  let report: DryRunReport;
  try {
    const transport = flags.transport === undefined ? {} : { transport: flags.transport };
    const client = await TeleportClient.connect(link, { signal: stopSignals.signal, ...transport });
    try {
      report = await dryRun(client, {
        dest,
        remotePath: flags.path ?? "",
        index,
        signal: stopSignals.signal,
        ...(flags.reuse === undefined ? {} : { reuse: flags.reuse }),
        ...(filters === undefined ? {} : { filters }),
        ...(flags.delete === true ? { delete: true } : {}),
      });
    } finally {
      await client.close();
    }
  } catch (err) {
    throw stopSignals.explain(err, "pull");
  } finally {
    stopSignals.stop();
    index.close();
  }
  await writeOut(flags.json === true ? jsonLine(report) : dryRunLines(report));
}

/**
 * The summary on stdout, what was left out on stderr; throws PARTIAL if the host could not read
 * some entries, or `--delete` could not remove some.
 */
async function reportPull(
  summary: PullLinkSummary,
  { json, quiet }: { json: boolean; quiet: boolean },
): Promise<void> {
  const partial = partialPull(summary);
  if (json) {
    const usage = process.resourceUsage();
    const cpuSeconds = (usage.userCPUTime + usage.systemCPUTime) / 1e6;
    // One line whatever happened: a partial pull's error goes inside its summary.
    const error = partial === undefined ? {} : errorJson(printedInJson(partial));
    await writeOut(jsonLine({ ...summary, cpuSeconds, peakRssBytes: usage.maxRSS * 1024, ...error }));
  } else if (!quiet) {
    await writeOut(pullSummaryLine(summary));
  }
  process.stderr.write(leftOutLines(summary));
  if (partial !== undefined) throw partial;
}

function partialPull(summary: PullLinkSummary): TeleportError | undefined {
  if (summary.failureCount > 0)
    return new TeleportError(
      ErrorCode.PARTIAL,
      `${summary.failureCount} of the entries could not be read on the host`,
    );
  if (summary.deleteFailureCount > 0)
    return new TeleportError(ErrorCode.PARTIAL, `${summary.deleteFailureCount} entries could not be deleted`);
  return undefined;
}

/** The chunk index in TELEPORT_HOME; a home that cannot be used is named, with what to do. */
export function openChunkIndex(): ChunkIndex {
  const home = teleportHome();
  try {
    return ChunkIndex.open(home);
  } catch (err) {
    const error = toTeleportError(err, `TELEPORT_HOME ${home}`);
    throw new TeleportError(error.code, error.detail, {
      cause: err,
      hint:
        `make ${home} a folder this user may write to, or set TELEPORT_HOME to one ` +
        "(it holds the chunk index, which makes pulls resume and reuse chunks)",
    });
  }
}

/**
 * Creates the destination folder (and missing folders above it); returns the topmost folder it
 * created, undefined if the destination was there. A pull that fails removes what it created,
 * if still empty (see removeEmptyFolders).
 */
export async function makeDestination(destPath: string): Promise<string | undefined> {
  try {
    return await mkdir(destPath, { recursive: true });
  } catch (err) {
    throw toTeleportError(err, `creating the destination ${destPath}`);
  }
}

/**
 * Removes `destPath` and the folders above it up to `top`, each only while empty: a failed pull
 * leaves no folder it made for nothing, and nothing that holds a part file to resume from.
 */
async function removeEmptyFolders(destPath: string, top: string): Promise<void> {
  for (let folder = destPath; ; folder = dirname(folder)) {
    try {
      await rmdir(folder);
    } catch {
      return; // not empty (or not ours to remove): leave it and what is above it
    }
    if (folder === top || dirname(folder) === folder) return;
  }
}

/** Prints a local file's manifest, streaming, so it can be checked with b3sum on each range. */
export async function manifestCommand(file: string, flags: { json?: boolean }) {
  const handle = await open(file, "r").catch((err: unknown) => {
    throw toTeleportError(err, file);
  });
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new TeleportError(ErrorCode.NOT_A_FILE, `${file} is not a regular file`);
    const chunks = chunkFile(handle.fd, stats.size, defaultChunker());
    if (flags.json) {
      const head = { path: file, size: stats.size, mode: stats.mode & 0o7777, mtimeMs: stats.mtimeMs };
      await writeOut(`${JSON.stringify(head).slice(0, -1)},"chunks":[`);
    }
    let first = true;
    let step = await chunks.next();
    while (!step.done) {
      for (const chunk of step.value) {
        const row = { offset: chunk.offset, size: chunk.size, hash: toHex(chunk.hash) };
        await writeOut(
          flags.json
            ? `${first ? "" : ","}\n${JSON.stringify(row)}`
            : `${row.offset}\t${row.size}\t${row.hash}\n`,
        );
        first = false;
      }
      step = await chunks.next();
    }
    const fileHash = toHex(step.value.fileHash);
    await writeOut(flags.json ? `\n],"hash":"${fileHash}"}\n` : `file\t${stats.size}\t${fileHash}\n`);
  } finally {
    await handle.close();
  }
}

/** `host`'s argument: a folder, or one regular file (`host FILE`). */
export async function ensureShareArgument(path: string): Promise<void> {
  const stats = await stat(path).catch((err: unknown) => {
    throw toTeleportError(err, path);
  });
  if (!stats.isDirectory() && !stats.isFile())
    throw new TeleportError(ErrorCode.USAGE, `${path} is not a folder or a regular file`);
}
