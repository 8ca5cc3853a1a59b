/** `teleport push SRC WRITE_LINK`: upload a file or folder into a host that takes uploads. */

import type { DryRunReport } from "../client/pull/dry-run.js";
import { ErrorCode, TeleportError } from "../errors.js";
import { type PushOptions, type PushSummary, push, pushDryRun } from "../push/pusher.js";
import type { TransportChoice } from "../transport/select.js";
import { filterRules, type PullFilterFlag } from "./commands.js";
import { errorJson, printedInJson, StopSignals } from "./error-report.js";
import { dryRunLines, leftOutLines } from "./pull-report.js";
import { writeOut } from "./stdout.js";
import { jsonLine } from "./terminal-text.js";
import { formatBytes, formatDuration } from "./units.js";

export interface PushFlags {
  path?: string;
  json?: boolean;
  quiet?: boolean;
  transport?: TransportChoice;
  /** --timeout, in seconds. */
  timeout?: number;
  /** --exclude and --include: one list, in the order typed (both flags hold it). */
  exclude?: PullFilterFlag[];
  include?: PullFilterFlag[];
  delete?: boolean;
  dryRun?: boolean;
}

function pushOptions(src: string, link: string, flags: PushFlags, signal: AbortSignal): PushOptions {
  return {
    src,
    link,
    remotePath: flags.path,
    transport: flags.transport,
    idleTimeoutMs: flags.timeout === undefined ? undefined : flags.timeout * 1000,
    signal,
    delete: flags.delete,
    filters: filterRules(flags),
  };
}

export async function pushCommand(src: string, link: string, flags: PushFlags): Promise<void> {
  if (flags.dryRun === true) return pushDryRunCommand(src, link, flags);
  const stopSignals = new StopSignals();
  const progress =
    flags.json !== true && flags.quiet !== true && process.stderr.isTTY ? new PushProgress() : undefined;
  let summary: PushSummary;
  try {
    summary = await push({
      ...pushOptions(src, link, flags, stopSignals.signal),
      onProgress: progress && ((sent, total) => progress.show(sent, total)),
    });
  } catch (err) {
    throw stopSignals.explain(err, "push");
  } finally {
    progress?.clear();
    stopSignals.stop();
  }
  const partial =
    summary.failureCount > 0
      ? new TeleportError(ErrorCode.PARTIAL, `${summary.failureCount} of the entries could not be read`)
      : undefined;
  // One JSON line whatever happened, as pull's: a partial push's error goes inside it.
  const error = partial === undefined ? {} : errorJson(printedInJson(partial));
  if (flags.json === true) await writeOut(jsonLine({ ...summary, ...error }));
  else if (flags.quiet !== true) await writeOut(pushSummaryLine(summary));
  process.stderr.write(leftOutLines(summary, "pushed"));
  if (partial !== undefined) throw partial;
}

/** `push --dry-run`: what the host's pull would copy, reuse and delete, printed as `pull --dry-run` prints it. */
async function pushDryRunCommand(src: string, link: string, flags: PushFlags): Promise<void> {
  const stopSignals = new StopSignals();
  let report: DryRunReport;
  try {
    report = await pushDryRun(pushOptions(src, link, flags, stopSignals.signal));
  } catch (err) {
    throw stopSignals.explain(err, "push");
  } finally {
    stopSignals.stop();
  }
  await writeOut(flags.json === true ? jsonLine(report) : dryRunLines(report));
}

/**
 * One line on a terminal while the host pulls, redrawn in place: the bytes sent so far of what
 * SRC holds (less, where the host had them already).
 */
class PushProgress {
  #shown = false;

  show(sent: number, total: number): void {
    this.#shown = true;
    process.stderr.write(`\r\x1b[2Kteleport: pushing: ${formatBytes(sent)} sent of ${formatBytes(total)}`);
  }

  clear(): void {
    if (this.#shown) process.stderr.write("\r\x1b[2K");
  }
}

/** `pushed 12 files, 1.0 GiB (3.2 MiB over the network, 1020.8 MiB the host had) in 4 s`. */
export function pushSummaryLine(summary: PushSummary): string {
  const files = `${summary.files} file${summary.files === 1 ? "" : "s"}`;
  const moved = `${formatBytes(summary.bytesFromNetwork)} over the network`;
  const reused = `${formatBytes(summary.bytesReused)} the host had`;
  const deleted = summary.deletedCount > 0 ? `, ${summary.deletedCount} deleted` : "";
  return `pushed ${files}, ${formatBytes(summary.bytes)} (${moved}, ${reused})${deleted} in ${formatDuration(summary.seconds)}\n`;
}
