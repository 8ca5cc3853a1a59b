/**
 * The CLI's commands: thin wrappers that turn flags into library calls and results into output.
 */
import { once } from "node:events";
import { open, stat } from "node:fs/promises";
import { resolve } from "node:path";
import { defaultChunker } from "../chunking/chunker.js";
import { toHex } from "../chunking/hash.js";
import { chunkFile } from "../chunking/manifest.js";
import { TeleportClient } from "../client/client.js";
import { CompressionPolicy, type CompressMode } from "../client/pool/compression-policy.js";
import type { ReuseScope } from "../client/pull.js";
import { pullLink } from "../client/pull-link.js";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { ChunkIndex } from "../store/chunk-index.js";
import type { TransportChoice } from "../transport/select.js";
import { type Entry, EntryKind } from "../wire/messages.js";
import { normalizeUserPath } from "../wire/path.js";
import { teleportHome } from "./home.js";
import { createPullOutput, formatBytes } from "./progress.js";
import { jsonLine, terminalLine } from "./terminal-text.js";

export interface PullFlags {
  path?: string;
  json?: boolean;
  progress?: boolean;
  /** -v: a line per file as it completes. */
  verbose?: boolean;
  /** -q: nothing but errors. */
  quiet?: boolean;
  streams?: number;
  retries?: number;
  /** Idle timeout in seconds. */
  timeout?: number;
  compress?: CompressMode;
  compressLevel?: number;
  transport?: TransportChoice;
  xattrs?: boolean;
  /** false with --no-encryption. */
  encryption?: boolean;
  reuse?: ReuseScope;
}

export async function pullCommand(link: string, dest: string, flags: PullFlags): Promise<void> {
  const controller = new AbortController();
  const cancel = () => controller.abort();
  process.once("SIGINT", cancel);
  process.once("SIGTERM", cancel);
  const plaintext = flags.encryption === false;
  if (plaintext && flags.transport === "quic")
    throw new TeleportError(ErrorCode.USAGE, "--no-encryption is for TCP: QUIC is always encrypted");
  if (plaintext) {
    process.stderr.write(
      "teleport: warning: --no-encryption: the data crosses the network readable by anyone on it " +
        "(still authenticated and verified)\n",
    );
  }
  const quiet = flags.quiet === true;
  const output = createPullOutput({
    progress: flags.progress !== false && flags.json !== true,
    verbose: flags.verbose === true && flags.json !== true,
    quiet,
  });
  const index = ChunkIndex.open(teleportHome());
  try {
    const summary = await pullLink(link, {
      remotePath: flags.path ?? "",
      dest: resolve(dest),
      signal: controller.signal,
      onProgress: (event) => output.onProgress(event),
      onNotice: (message) => output.notice(message),
      ...(plaintext ? { plaintext, transport: "tcp" as const } : {}),
      ...(flags.transport === undefined || plaintext ? {} : { transport: flags.transport }),
      ...(flags.xattrs === true ? { xattrs: true } : {}),
      index,
      ...(flags.reuse === undefined ? {} : { reuse: flags.reuse }),
      ...(flags.streams === undefined ? {} : { streams: flags.streams }),
      ...(flags.retries === undefined ? {} : { retries: flags.retries }),
      ...(flags.timeout === undefined ? {} : { idleTimeoutMs: flags.timeout * 1000 }),
      compression: new CompressionPolicy(flags.compress ?? "auto", flags.compressLevel),
    });
    output.stop();
    const usage = process.resourceUsage();
    if (flags.json) {
      const cpuSeconds = (usage.userCPUTime + usage.systemCPUTime) / 1e6;
      process.stdout.write(jsonLine({ ...summary, cpuSeconds, peakRssBytes: usage.maxRSS * 1024 }));
    } else if (!quiet) {
      const { totals } = summary;
      const rate = summary.bytes / Math.max(totals.seconds, 1e-6);
      const attempts = totals.attempts > 1 ? `, ${totals.attempts} attempts` : "";
      process.stdout.write(
        `pulled ${summary.files} files, ${summary.directories} folders, ${summary.symlinks} symlinks` +
          `${summary.hardLinks > 0 ? `, ${summary.hardLinks} hard links` : ""}` +
          `${summary.bytesInHoles > 0 ? ` (${formatBytes(summary.bytesInHoles)} in holes)` : ""}: ` +
          `${formatBytes(summary.bytes)} in ${totals.seconds.toFixed(2)} s (${formatBytes(rate)}/s), ` +
          `${formatBytes(totals.bytesMoved)} from the network${summary.encrypted ? "" : " (unencrypted)"}, ` +
          `${formatBytes(totals.bytesReused)} reused${attempts}\n`,
      );
    }
    if (summary.failureCount > 0) {
      for (const { path, code, message } of summary.failures) {
        process.stderr.write(terminalLine(`teleport: not pulled: "${path}": ${code}: ${message}`));
      }
      const unlisted = summary.failureCount - summary.failures.length;
      if (unlisted > 0) process.stderr.write(`teleport: not pulled: ${unlisted} more\n`);
      throw new TeleportError(
        ErrorCode.PARTIAL,
        `${summary.failureCount} of the entries could not be read on the host`,
      );
    }
  } finally {
    output.stop();
    index.close();
  }
}

export async function lsCommand(
  link: string,
  path: string | undefined,
  flags: { json?: boolean; recursive?: boolean },
) {
  const client = await TeleportClient.connect(link);
  try {
    for await (const entry of client.list(normalizeUserPath(path ?? ""), {
      recursive: flags.recursive === true,
    })) {
      await writeOut(flags.json ? jsonLine(entryToJson(entry)) : terminalLine(formatEntry(entry)));
    }
  } finally {
    await client.close();
  }
}

export async function catCommand(link: string, path: string, flags: { offset?: number; length?: number }) {
  const client = await TeleportClient.connect(link);
  try {
    const remote = normalizeUserPath(path);
    const offset = flags.offset ?? 0;
    let length = flags.length;
    if (length === undefined) {
      const entry = await client.stat(remote);
      if (entry.kind !== EntryKind.FILE)
        throw new TeleportError(ErrorCode.NOT_A_FILE, `"${remote}" is not a file`);
      if (offset > entry.size)
        throw new TeleportError(ErrorCode.RANGE, `offset ${offset} is past the end (${entry.size} bytes)`);
      length = entry.size - offset;
    }
    for await (const piece of client.readRange(remote, offset, length)) await writeOut(piece);
  } finally {
    await client.close();
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

async function writeOut(data: string | Buffer): Promise<void> {
  if (!process.stdout.write(data)) await once(process.stdout, "drain");
}

function entryToJson(entry: Entry) {
  const kind =
    entry.kind === EntryKind.FILE ? "file" : entry.kind === EntryKind.DIRECTORY ? "dir" : "symlink";
  return {
    path: entry.path,
    kind,
    size: entry.size,
    mode: entry.mode,
    mtimeMs: entry.mtimeMs,
    ...(entry.kind === EntryKind.SYMLINK ? { target: entry.linkTarget } : {}),
  };
}

function formatEntry(entry: Entry): string {
  const type = entry.kind === EntryKind.DIRECTORY ? "d" : entry.kind === EntryKind.SYMLINK ? "l" : "-";
  const bits = "rwxrwxrwx".split("").map((letter, i) => ((entry.mode >> (8 - i)) & 1 ? letter : "-"));
  const when = new Date(entry.mtimeMs).toISOString().slice(0, 19).replace("T", " ");
  const name = entry.kind === EntryKind.SYMLINK ? `${entry.path} -> ${entry.linkTarget}` : entry.path || ".";
  return `${type}${bits.join("")} ${String(entry.size).padStart(12)} ${when} ${name}`;
}

export async function ensureDirectoryArgument(path: string): Promise<void> {
  const stats = await stat(path).catch((err: unknown) => {
    throw toTeleportError(err, path);
  });
  if (!stats.isDirectory()) throw new TeleportError(ErrorCode.USAGE, `${path} is not a folder`);
}
