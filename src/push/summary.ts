/** What `push` reports: the host's pull of the upload, told back to the pusher (UPLOAD_RESULT). */

import type { DryRunReport } from "../client/pull/dry-run.js";
import type { EntryFailure, PullSummary } from "../client/pull.js";
import { ErrorCode, TeleportError } from "../errors.js";

/** An entry of SRC the pusher does not serve (a symlink out of SRC, a FIFO...), and why. */
export interface SkippedEntry {
  path: string;
  reason: string;
}

export interface PushSummary {
  files: number;
  directories: number;
  symlinks: number;
  /** Bytes of the files uploaded. */
  bytes: number;
  /** Of those, the bytes that crossed the network. */
  bytesFromNetwork: number;
  /** And those the host already held: copied from its share, earlier uploads, or resumed. */
  bytesReused: number;
  /** Seconds the host took, from its manifest request to the last file committed. */
  seconds: number;
  /** Entries left out of the upload (`skippedCount` in all, the first of them named). */
  skipped: SkippedEntry[];
  skippedCount: number;
  /** Entries the pusher could not read; the rest was uploaded. */
  failures: EntryFailure[];
  failureCount: number;
  /** With `--delete`: what the upload folder held beyond SRC, removed (`deletedCount` in all, the first named). */
  deleted: string[];
  deletedCount: number;
  /**
   * Data streams the pusher opened that carried chunks; 0: all came over the control connection
   * (a pusher or host without them). Absent from hosts before them.
   */
  streams?: number;
  /**
   * The pusher's own count, not the host's: the data streams it served, by where it served them,
   * its stream threads (`worker`) or its main thread (`main`: portable mode, QUIC).
   */
  pusherStreams?: { worker: number; main: number };
}

/** JSON bytes of the entries a summary names: it must fit UPLOAD_RESULT (64 KiB) whatever the paths. */
const NAMED_ENTRIES_BYTES = 32 * 1024;

export function pushSummary(summary: PullSummary): PushSummary {
  const { files, directories, symlinks, bytes, bytesFromNetwork, bytesReused, seconds } = summary;
  let room = NAMED_ENTRIES_BYTES;
  const fits = (entry: object | string) => {
    room -= JSON.stringify(entry).length;
    return room >= 0;
  };
  return {
    files,
    directories,
    symlinks,
    bytes,
    bytesFromNetwork,
    bytesReused,
    seconds,
    skipped: summary.skipped.filter(fits),
    skippedCount: summary.skippedCount,
    failures: summary.failures.filter(fits),
    failureCount: summary.failureCount,
    deleted: summary.deleted.filter(fits),
    deletedCount: summary.deletedCount,
    streams: summary.streams.length,
  };
}

/** A dry run's report as UPLOAD_RESULT carries it: its lists cut to fit, their counts whole. */
export function dryRunResult(report: DryRunReport): DryRunReport {
  let room = NAMED_ENTRIES_BYTES;
  const fits = (path: string) => {
    room -= path.length + 3;
    return room >= 0;
  };
  return {
    ...report,
    copy: report.copy.filter(fits),
    reuse: report.reuse.filter(fits),
    delete: report.delete.filter(fits),
  };
}

const DRY_RUN_COUNTS = [
  "copyCount",
  "reuseCount",
  "unchanged",
  "deleteCount",
  "files",
  "bytes",
  "bytesFromNetwork",
  "bytesReused",
  "failureCount",
] as const;

/** The dry run's report in an UPLOAD_RESULT, checked for the fields `push --dry-run` prints. */
export function parseDryRunReport(text: string): DryRunReport {
  const record = parsedRecord(text);
  for (const field of DRY_RUN_COUNTS) {
    if (typeof record[field] !== "number")
      throw new TeleportError(ErrorCode.PROTOCOL, `the host's dry run report has no ${field}`);
  }
  for (const field of ["copy", "reuse", "delete"]) {
    const list = record[field];
    if (!Array.isArray(list) || !list.every((path) => typeof path === "string"))
      throw new TeleportError(ErrorCode.PROTOCOL, `the host's dry run report has no ${field}`);
  }
  return { ...(record as unknown as DryRunReport), dryRun: true };
}

function parsedRecord(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new TeleportError(ErrorCode.PROTOCOL, "the host's upload summary is not JSON");
  }
  return (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
}

const COUNTS = [
  "files",
  "directories",
  "symlinks",
  "bytes",
  "bytesFromNetwork",
  "bytesReused",
  "seconds",
  "skippedCount",
  "failureCount",
] as const;

/** The summary in an UPLOAD_RESULT, checked for the fields `push --json` prints. */
export function parsePushSummary(text: string): PushSummary {
  const record = parsedRecord(text);
  for (const field of COUNTS) {
    if (typeof record[field] !== "number")
      throw new TeleportError(ErrorCode.PROTOCOL, `the host's upload summary has no ${field}`);
  }
  for (const field of ["skipped", "failures"]) {
    if (!Array.isArray(record[field]))
      throw new TeleportError(ErrorCode.PROTOCOL, `the host's upload summary has no ${field}`);
  }
  return record as unknown as PushSummary;
}
