/** What `push` reports: the host's pull of the upload, told back to the pusher (UPLOAD_RESULT). */

import type { PullSummary } from "../client/pull.js";
import { ErrorCode, TeleportError } from "../errors.js";

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
}

export function pushSummary(summary: PullSummary): PushSummary {
  const { files, directories, symlinks, bytes, bytesFromNetwork, bytesReused, seconds } = summary;
  return { files, directories, symlinks, bytes, bytesFromNetwork, bytesReused, seconds };
}

/** The summary in an UPLOAD_RESULT, checked for the fields `push --json` prints. */
export function parsePushSummary(text: string): PushSummary {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new TeleportError(ErrorCode.PROTOCOL, "the host's upload summary is not JSON");
  }
  const fields = ["files", "directories", "symlinks", "bytes", "bytesFromNetwork", "bytesReused", "seconds"];
  const record = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  for (const field of fields) {
    if (typeof record[field] !== "number")
      throw new TeleportError(ErrorCode.PROTOCOL, `the host's upload summary has no ${field}`);
  }
  return record as unknown as PushSummary;
}
