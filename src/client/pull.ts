/**
 * Pulling a file or a tree over a connected client: the entry point. The pull itself lives in
 * ./pull/ (puller.ts wires manifest-walker.ts, file-transfer.ts, chunk-planner.ts and
 * destination.ts). It uses the chunk index it is given, none otherwise; pullLink (pull-link.ts)
 * is the pull that opens TELEPORT_HOME's by default.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import type { TeleportClient } from "./client.js";
import { pull as runPull } from "./pull/puller.js";
import type { PullOptions, PullSummary } from "./pull/summary.js";

export type {
  BytesEvent,
  DoneEvent,
  EntryFailure,
  FileDoneEvent,
  ListingEvent,
  PullEvent,
  PullOptions,
  PullSummary,
  PullTotals,
  Retry,
  RetryEvent,
  ReusedBytes,
  ReuseScope,
} from "./pull/summary.js";
export { REUSE_SCOPES } from "./pull/summary.js";

/**
 * Pulls `options.remotePath` into `options.dest` over `client`. Aborting `options.signal` rejects
 * with TELEPORT_ERR_CANCELLED (a signal aborted before the call included) once the pull has stopped.
 */
export function pull(client: TeleportClient, options: PullOptions): Promise<PullSummary> {
  if (options.signal?.aborted === true) {
    return Promise.reject(
      new TeleportError(ErrorCode.CANCELLED, "pull cancelled", { cause: options.signal.reason }),
    );
  }
  return runPull(client, options);
}
