/** What the receiving side counts as files land (the pull's Tally, client/pull/summary.ts, is one). */

/**
 * Where bytes of a received file came from: its old copy (existing), an interrupted earlier
 * transfer's part file (resumed), other files the index knows (index), the network, or a hole
 * (neither read nor fetched).
 */
export type ByteSource = "existing" | "resumed" | "index" | "network" | "hole";

export interface TransferTally {
  /** A file of `bytes` the manifest announced. */
  announced(bytes: number): void;
  /** Bytes of a file in place, from `source`. */
  written(bytes: number, source: ByteSource): void;
  /** Counts have changed: pass them on to whoever shows progress. */
  report(): void;
}
