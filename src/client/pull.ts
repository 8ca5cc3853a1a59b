/**
 * Pulling a file or a tree: the entry point. The pull itself lives in ./pull/ (puller.ts wires
 * manifest-walker.ts, file-transfer.ts, chunk-planner.ts and destination.ts).
 */
export { pull } from "./pull/puller.js";
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
