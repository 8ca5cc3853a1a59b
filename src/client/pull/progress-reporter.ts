/**
 * Sends a pull's PullEvents to its `onProgress`. Counts change per chunk; they are sent at most
 * every PROGRESS_INTERVAL_MS (the first at once, the last when the pull ends), so a handler
 * never runs per chunk and a display never lags by more than the interval.
 */
import type { FileDoneEvent, ProgressSink, PullEvent, PullSummary, PullTotals } from "./summary.js";

/** Ten updates a second: smooth for a bar, and nothing next to the chunks' own work. */
export const PROGRESS_INTERVAL_MS = 100;

export class ProgressReporter implements ProgressSink {
  readonly #onProgress: ((event: PullEvent) => void) | undefined;
  #files = 0;
  #bytes = 0;
  #listed = false;
  #listingChanged = false;
  #counts: PullSummary | undefined;
  #countsChanged = false;
  #lastSentAt = Number.NEGATIVE_INFINITY;
  #timer: NodeJS.Timeout | undefined;

  constructor(onProgress: ((event: PullEvent) => void) | undefined) {
    this.#onProgress = onProgress;
  }

  announced(bytes: number): void {
    this.#files++;
    this.#bytes += bytes;
    this.#listingChanged = true;
    this.#schedule();
  }

  listed(): void {
    this.#listed = true;
    this.#listingChanged = true;
    this.flush();
  }

  counted(summary: PullSummary): void {
    this.#counts = summary;
    this.#countsChanged = true;
    this.#schedule();
  }

  fileDone(file: Omit<FileDoneEvent, "type">): void {
    this.#onProgress?.({ type: "file-done", ...file });
  }

  /** Sends what changed since the last events, now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#lastSentAt = performance.now();
    const onProgress = this.#onProgress;
    if (onProgress === undefined) return;
    if (this.#listingChanged) {
      this.#listingChanged = false;
      onProgress({ type: "listing", files: this.#files, bytes: this.#bytes, complete: this.#listed });
    }
    const counts = this.#counts;
    if (this.#countsChanged && counts !== undefined) {
      this.#countsChanged = false;
      const { bytes: done, bytesFromNetwork: moved, bytesReused: reused, path } = counts;
      onProgress({ type: "bytes", done, moved, reused, path });
    }
  }

  /** The pull is complete: the last counts, then `done`. */
  done(summary: PullSummary, totals: PullTotals): void {
    this.flush();
    this.#onProgress?.({ type: "done", summary, totals });
  }

  #schedule(): void {
    if (this.#onProgress === undefined || this.#timer !== undefined) return;
    const wait = this.#lastSentAt + PROGRESS_INTERVAL_MS - performance.now();
    if (wait <= 0) this.flush();
    else this.#timer = setTimeout(() => this.flush(), wait).unref();
  }
}

/** The totals of a pull that took one attempt. */
export function singleAttemptTotals(summary: PullSummary): PullTotals {
  return {
    attempts: 1,
    seconds: summary.seconds,
    bytesMoved: summary.bytesFromNetwork,
    bytesReused: summary.bytesReused,
  };
}
