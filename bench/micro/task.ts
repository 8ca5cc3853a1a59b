/**
 * What a micro-benchmark task is: one hot operation, called over and over by the harness, with
 * what one call processes so the harness can turn latency into MB/s or operations per second.
 */

export interface MicroTask {
  /** Stable name: figures and ratios are keyed on it ("blake3 1 MiB"). */
  name: string;
  /** What one operation is, in words, for reports. */
  operation: string;
  /** "subject" for teleport's code, "limit" for the references it is judged against. */
  role: "subject" | "limit";
  /** Bytes one operation processes; null where only operations per second make sense. */
  bytesPerOp: number | null;
  /**
   * One operation. It may return tinybench's `{ overriddenDuration }` to time only part of
   * itself (a TLS transfer without its handshake).
   */
  run(): unknown;
  /** `run` returns a promise. */
  async?: boolean;
  /**
   * Operations per timed sample, for operations of a few microseconds: timing each call alone
   * would measure the clock as much as the operation. Synchronous tasks only.
   */
  opsPerSample?: number;
  /** Exact operations per round instead of a time budget, for operations of 100 ms or more. */
  iterationsPerRound?: number;
}

/** Tasks that share fixtures (a temp file, a server process), released together. */
export interface TaskGroup {
  tasks: MicroTask[];
  close?(): Promise<void>;
}

export const KIB = 1024;
export const MIB = 1024 * 1024;
