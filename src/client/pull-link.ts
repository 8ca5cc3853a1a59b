/**
 * A pull from a share link that outlives its connections and changing files: when the host goes
 * away or stops answering mid-pull, or a file changes under it, it reconnects with backoff and
 * runs again. Every run resumes what the last left (journaled chunks, finished files, through
 * the chunk index), so a retry fetches what is missing, not the whole pull again. A host that cannot be reached at the start is reported at
 * once: retries are for pulls that were under way. Its `onProgress` hears each attempt's events,
 * a `retry` before each wait, and one `done` with the totals of every attempt.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import type { ShareLink } from "../transport/link.js";
import type { TransportChoice } from "../transport/select.js";
import { TeleportClient } from "./client.js";
import {
  type PullEvent,
  type PullOptions,
  type PullSummary,
  type PullTotals,
  pull,
  type RetryEvent,
} from "./pull.js";
import { retryWaitMs } from "./retry-policy.js";

export type { Retry } from "./pull.js";

export interface PullLinkOptions extends PullOptions {
  /** How to reach the host (default `auto`). */
  transport?: TransportChoice;
  /** Runs after the first fails with a RETRYABLE error mid-pull; default DEFAULT_RETRIES. */
  retries?: number;
}

/** The last attempt's summary, with the totals of every attempt. */
export interface PullLinkSummary extends PullSummary {
  /** Runs it took, the last one complete: 1 without a retry. */
  attempts: number;
  totals: PullTotals;
}

/** 0.5 + 1 + 2 + 4 + 8 s: a host restarted within ~15 s is picked up again. */
export const DEFAULT_RETRIES = 5;

export async function pullLink(link: string | ShareLink, options: PullLinkOptions): Promise<PullLinkSummary> {
  const retries = options.retries ?? DEFAULT_RETRIES;
  const { signal } = options;
  const attempts = new AttemptTotals(options.onProgress);
  const attemptOptions = { ...options, onProgress: (event: PullEvent) => attempts.observe(event) };
  for (let attempt = 0; ; attempt++) {
    let connected = false;
    try {
      // The pull's options are the connection's too, by the same names (ConnectOptions).
      const client = await TeleportClient.connect(link, options);
      connected = true;
      try {
        return attempts.complete(await pull(client, attemptOptions));
      } finally {
        await client.close();
      }
    } catch (err) {
      const error = toTeleportError(err);
      const underway = connected || attempt > 0;
      const cancelled = signal?.aborted === true;
      const waitMs = retryWaitMs({ attempt, retries, code: error.code, underway, cancelled });
      if (waitMs === undefined) throw error;
      attempts.retry({ type: "retry", attempt: attempt + 1, of: retries, error, waitMs });
      await sleep(waitMs, undefined, signal && { signal }).catch(() => {
        throw new TeleportError(ErrorCode.CANCELLED, "pull cancelled");
      });
    }
  }
}

/**
 * Counts a pull's attempts into its totals, and passes their events on: each attempt's `done`
 * becomes the pull's when it is the last.
 */
class AttemptTotals {
  readonly #onProgress: ((event: PullEvent) => void) | undefined;
  readonly #started = performance.now();
  #attempts = 1;
  /** What the attempts before this one moved. */
  #movedBefore = 0;
  /** What this attempt has moved so far. */
  #moved = 0;

  constructor(onProgress: ((event: PullEvent) => void) | undefined) {
    this.#onProgress = onProgress;
  }

  observe(event: PullEvent): void {
    if (event.type === "bytes") this.#moved = event.moved;
    if (event.type !== "done") this.#onProgress?.(event);
  }

  retry(event: RetryEvent): void {
    this.#attempts++;
    this.#movedBefore += this.#moved;
    this.#moved = 0;
    this.#onProgress?.(event);
  }

  complete(summary: PullSummary): PullLinkSummary {
    const totals = this.#totals(summary);
    const pulled = { ...summary, attempts: this.#attempts, totals };
    this.#onProgress?.({ type: "done", summary: pulled, totals });
    return pulled;
  }

  /**
   * What earlier attempts moved is found in place by the last (a resumed part file, a file
   * already committed) and counted there as reused: it is moved, not reused, for the whole pull.
   */
  #totals(last: PullSummary): PullTotals {
    const foundAgain = Math.min(this.#movedBefore, last.reused.resumed + last.reused.existing);
    return {
      attempts: this.#attempts,
      seconds: (performance.now() - this.#started) / 1000,
      bytesMoved: this.#movedBefore + last.bytesFromNetwork,
      bytesReused: last.bytesReused - foundAgain,
    };
  }
}
