/**
 * A pull from a share link that outlives its connections and changing files: when the host goes
 * away or stops answering mid-pull, or a file changes under it, it reconnects with backoff and
 * runs again. Every run resumes what the last left (journaled chunks, finished files, through
 * the chunk index), so a retry fetches what is missing, not the whole pull again. A host that cannot be reached at the start is reported at
 * once: retries are for pulls that were under way.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import type { ShareLink } from "../transport/link.js";
import type { TransportChoice } from "../transport/select.js";
import { TeleportClient } from "./client.js";
import { type PullOptions, type PullSummary, pull } from "./pull.js";
import { DEFAULT_RETRIES, retryWaitMs } from "./retry-policy.js";

export interface Retry {
  /** 1 for the first retry. */
  attempt: number;
  of: number;
  error: TeleportError;
  waitMs: number;
}

export interface PullLinkOptions extends PullOptions {
  /** How to reach the host (default `auto`). */
  transport?: TransportChoice;
  /** Runs after the first fails with a RETRYABLE error mid-pull; default DEFAULT_RETRIES. */
  retries?: number;
  /** Told before each wait for a retry. */
  onRetry?: (retry: Retry) => void;
}

export interface PullLinkSummary extends PullSummary {
  /** Runs it took, the last one complete: 1 without a retry. */
  attempts: number;
}

export { DEFAULT_RETRIES } from "./retry-policy.js";

export async function pullLink(link: string | ShareLink, options: PullLinkOptions): Promise<PullLinkSummary> {
  const retries = options.retries ?? DEFAULT_RETRIES;
  const { signal } = options;
  for (let attempt = 0; ; attempt++) {
    let connected = false;
    try {
      // The pull's options are the connection's too, by the same names (ConnectOptions).
      const client = await TeleportClient.connect(link, options);
      connected = true;
      try {
        return { ...(await pull(client, options)), attempts: attempt + 1 };
      } finally {
        await client.close();
      }
    } catch (err) {
      const error = toTeleportError(err);
      const underway = connected || attempt > 0;
      const cancelled = signal?.aborted === true;
      const waitMs = retryWaitMs({ attempt, retries, code: error.code, underway, cancelled });
      if (waitMs === undefined) throw error;
      options.onRetry?.({ attempt: attempt + 1, of: retries, error, waitMs });
      await sleep(waitMs, undefined, signal && { signal }).catch(() => {
        throw new TeleportError(ErrorCode.CANCELLED, "pull cancelled");
      });
    }
  }
}
