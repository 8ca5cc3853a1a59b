/** What `push` reports: the host's pull of the upload, told back to the pusher (UPLOAD_RESULT). */
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
}

/** JSON bytes of the entries a summary names: it must fit UPLOAD_RESULT (64 KiB) whatever the paths. */
const NAMED_ENTRIES_BYTES = 32 * 1024;

export function pushSummary(summary: PullSummary): PushSummary {
  const { files, directories, symlinks, bytes, bytesFromNetwork, bytesReused, seconds } = summary;
  let room = NAMED_ENTRIES_BYTES;
  const fits = (entry: object) => {
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
  };
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
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new TeleportError(ErrorCode.PROTOCOL, "the host's upload summary is not JSON");
  }
  const record = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
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
