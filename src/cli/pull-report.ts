/**
 * What `pull` prints when it ends: the summary line on stdout, and on stderr each entry the host
 * skipped or could not read, escaped for the terminal (names come from the network).
 */
import type { DryRunReport } from "../client/pull/dry-run.js";
import type { PullLinkSummary } from "../client/pull-link.js";
import { SkipReason } from "../wire/messages.js";
import { plural } from "./plural.js";
import { formatBytes } from "./progress.js";
import { terminalLine } from "./terminal-text.js";

/**
 * One line: what was pulled, how long it took over every attempt, and what crossed the network at
 * what rate; bytes reused from this machine are said apart, as they say nothing of the network's speed.
 */
export function pullSummaryLine(summary: PullLinkSummary): string {
  const { totals } = summary;
  const counts = [
    plural(summary.files, "file"),
    plural(summary.directories, "folder"),
    plural(summary.symlinks, "symlink"),
    ...(summary.hardLinks > 0 ? [plural(summary.hardLinks, "hard link")] : []),
  ].join(", ");
  const holes = summary.bytesInHoles > 0 ? ` (${formatBytes(summary.bytesInHoles)} in holes)` : "";
  const networkRate = totals.bytesMoved / Math.max(totals.seconds, 1e-6);
  const network =
    totals.bytesMoved > 0
      ? `${formatBytes(totals.bytesMoved)} from the network at ${formatBytes(networkRate)}/s`
      : "nothing from the network";
  const attempts = totals.attempts > 1 ? `, ${totals.attempts} attempts` : "";
  const deleted = summary.deletedCount > 0 ? `, ${summary.deletedCount} deleted` : "";
  const delta = summary.delta;
  const saved =
    delta !== null && delta.bytesSaved > 0 ? ` (${formatBytes(delta.bytesSaved)} saved by delta)` : "";
  return (
    `pulled ${counts}${holes}: ${formatBytes(summary.bytes)} in ${totals.seconds.toFixed(2)} s, ` +
    `${network}${saved}${summary.encrypted ? "" : " (unencrypted)"}, ${formatBytes(totals.bytesReused)} reused${deleted}${attempts}\n`
  );
}

/** A Map, not an object: a reason is the host's word, and "constructor" must not find a function. */
const SKIP_REASON_TEXT = new Map<string, string>([
  [SkipReason.SYMLINK_OUTSIDE, "a symlink leading outside the share"],
  [SkipReason.FIFO, "a FIFO"],
  [SkipReason.SOCKET, "a socket"],
  [SkipReason.DEVICE, "a device"],
]);

/** stderr lines for the entries the host skipped and those it could not read. */
export function leftOutLines(
  summary: Pick<PullLinkSummary, "skipped" | "skippedCount" | "failures" | "failureCount"> &
    Partial<Pick<PullLinkSummary, "deleteFailures" | "deleteFailureCount">>,
  done = "pulled",
): string {
  let text = "";
  for (const { path, reason } of summary.skipped) {
    text += terminalLine(`teleport: skipped "${path}": ${SKIP_REASON_TEXT.get(reason) ?? reason}`);
  }
  const unlistedSkips = summary.skippedCount - summary.skipped.length;
  if (unlistedSkips > 0) text += `teleport: skipped ${unlistedSkips} more\n`;
  for (const { path, code, message } of summary.failures) {
    text += terminalLine(`teleport: not ${done}: "${path}": ${code}: ${message}`);
  }
  const unlistedFailures = summary.failureCount - summary.failures.length;
  if (unlistedFailures > 0) text += `teleport: not ${done}: ${unlistedFailures} more\n`;
  const deleteFailures = summary.deleteFailures ?? [];
  for (const { path, message } of deleteFailures)
    text += terminalLine(`teleport: not deleted: "${path}": ${message}`);
  const unlistedDeletes = (summary.deleteFailureCount ?? 0) - deleteFailures.length;
  if (unlistedDeletes > 0) text += `teleport: not deleted: ${unlistedDeletes} more\n`;
  return text;
}

/** `pull --dry-run` without --json: a line per path (copy, reuse, delete), then the counts. */
export function dryRunLines(report: DryRunReport): string {
  let text = "";
  for (const path of report.copy) text += terminalLine(`copy ${path}`);
  for (const path of report.reuse) text += terminalLine(`reuse ${path}`);
  for (const path of report.delete) text += terminalLine(`delete ${path}`);
  return (
    text +
    `dry run: ${plural(report.copyCount, "file")} to copy, ${report.reuseCount} to reuse, ` +
    `${report.unchanged} unchanged, ${report.deleteCount} to delete; ` +
    `${formatBytes(report.bytesFromNetwork)} from the network\n`
  );
}
