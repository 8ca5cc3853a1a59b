/**
 * `teleport bench <link>`: what a user's own link to a host delivers. It measures the connect
 * time, ping round trips, the first byte of a file, 4 KiB reads at random offsets, and the pull
 * throughput of that file with each stream count asked for (into a temporary folder, removed
 * afterwards). The file is `--path`, or the largest file the share lists first.
 */
import { randomInt } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TeleportClient } from "../client/client.js";
import { pull } from "../client/pull.js";
import { ErrorCode, TeleportError } from "../errors.js";
import { type Entry, EntryKind } from "../wire/messages.js";
import { normalizeUserPath } from "../wire/path.js";
import { formatBytes } from "./progress.js";
import { jsonLine, terminalLine } from "./terminal-text.js";

export interface BenchFlags {
  path?: string;
  streams?: number[];
  reads?: number;
  json?: boolean;
}

/** How many entries the search for a file to measure looks at before it settles. */
const ENTRIES_SCANNED = 10_000;
const PINGS = 10;

export async function benchCommand(link: string, flags: BenchFlags): Promise<void> {
  const connectStarted = performance.now();
  const client = await TeleportClient.connect(link);
  const connectMs = performance.now() - connectStarted;
  try {
    const file = await chooseFile(client, flags.path);
    const pingMs: number[] = [];
    for (let i = 0; i < PINGS; i++) pingMs.push(await client.ping());
    const firstByteMs = await timeFirstByte(link, file.path);
    const readMs = await randomReads(client, file, flags.reads ?? 200);
    const pulls = [];
    for (const streams of flags.streams ?? [1, 2, 4, 8]) pulls.push(await timePull(client, file, streams));
    const result = {
      file: file.path,
      bytes: file.size,
      connectMs,
      pingMs: quantiles(pingMs),
      firstByteMs,
      random4kMs: quantiles(readMs),
      pulls,
    };
    if (flags.json) {
      process.stdout.write(jsonLine(result));
      return;
    }
    const ms = (value: number) => `${value.toFixed(2)} ms`;
    const lines = [
      `file        ${file.path} (${formatBytes(file.size)})`,
      `connect     ${ms(connectMs)} (TCP, TLS 1.3, pinned certificate, secret proof)`,
      `ping        p50 ${ms(result.pingMs.p50)}, p99 ${ms(result.pingMs.p99)}`,
      `first byte  ${ms(firstByteMs)} from connect`,
      `random 4k   p50 ${ms(result.random4kMs.p50)}, p99 ${ms(result.random4kMs.p99)} (${readMs.length} reads)`,
      ...pulls.map(
        (run) =>
          `pull        ${String(run.streams).padStart(2)} streams: ${formatBytes(run.bytesPerSecond)}/s ` +
          `(${run.seconds.toFixed(2)} s)`,
      ),
    ];
    process.stdout.write(lines.map(terminalLine).join(""));
  } finally {
    await client.close();
  }
}

async function chooseFile(client: TeleportClient, path: string | undefined): Promise<Entry> {
  if (path !== undefined) {
    const entry = await client.stat(normalizeUserPath(path));
    if (entry.kind !== EntryKind.FILE) throw new TeleportError(ErrorCode.USAGE, `"${path}" is not a file`);
    return entry;
  }
  let largest: Entry | undefined;
  let scanned = 0;
  for await (const entry of client.list("", { recursive: true })) {
    if (entry.kind === EntryKind.FILE && entry.size > (largest?.size ?? 0)) largest = entry;
    if (++scanned >= ENTRIES_SCANNED) break;
  }
  if (largest === undefined)
    throw new TeleportError(ErrorCode.NOT_FOUND, "the share has no file to measure with");
  return largest;
}

/** From connect to the first byte of the file, on a connection of its own. */
async function timeFirstByte(link: string, path: string): Promise<number> {
  const started = performance.now();
  const client = await TeleportClient.connect(link);
  try {
    for await (const piece of client.readRange(path, 0, 1)) if (piece.length > 0) break;
    return performance.now() - started;
  } finally {
    await client.close();
  }
}

async function randomReads(client: TeleportClient, file: Entry, reads: number): Promise<number[]> {
  const blocks = Math.floor(file.size / 4096);
  if (blocks === 0) return [];
  const times: number[] = [];
  for (let i = 0; i < reads; i++) {
    const offset = randomInt(0, blocks) * 4096;
    const started = performance.now();
    for await (const _piece of client.readRange(file.path, offset, 4096)) {
      // The bytes are verified by readRange; the time is what counts here.
    }
    times.push(performance.now() - started);
  }
  return times;
}

async function timePull(client: TeleportClient, file: Entry, streams: number) {
  const dest = await mkdtemp(join(tmpdir(), "teleport-bench-"));
  try {
    const summary = await pull(client, { remotePath: file.path, dest, streams });
    return { streams, seconds: summary.seconds, bytesPerSecond: summary.bytes / summary.seconds };
  } finally {
    await rm(dest, { recursive: true, force: true });
  }
}

function quantiles(values: readonly number[]): { p50: number; p99: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0;
  return { p50: at(0.5), p99: at(0.99) };
}
