/**
 * A pull from a share link that outlives its connections and changing files: when the host goes
 * away or stops answering mid-pull, or a file changes under it, it reconnects with backoff and
 * runs again. Every run resumes what the last left (journaled chunks, finished files, through
 * the chunk index), so a retry fetches what is missing, not the whole pull again. A host that
 * cannot be reached at the start is reported at once: retries are for pulls that were under way.
 *
 * It is the library's pull and the CLI's: by default it uses the chunk index in TELEPORT_HOME,
 * as `teleport pull` does, so a library pull dedups and resumes as the CLI's do.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { ChunkIndex } from "../store/chunk-index.js";
import { teleportHome } from "../store/teleport-home.js";
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

export interface PullLinkOptions extends Omit<PullOptions, "index"> {
  /**
   * The chunk index the pull dedups and resumes with. Default: the CLI's, in TELEPORT_HOME
   * (`teleportHome()`), opened for this pull and closed after it. An index given is used and
   * left open; `null` pulls without one (every byte fetched, nothing resumed or recorded).
   */
  index?: ChunkIndex | null;
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

/**
 * Pulls `options.remotePath` of the share into `options.dest`, retrying across lost connections.
 * Aborting `options.signal` rejects with TELEPORT_ERR_CANCELLED once the pull has stopped: its
 * connections and the index it opened are closed, every file at its final name is complete, and
 * part files stay only where the index keeps them for the next pull to resume.
 */
export async function pullLink(link: string | ShareLink, options: PullLinkOptions): Promise<PullLinkSummary> {
  const { signal } = options;
  let opened: ChunkIndex | undefined;
  try {
    signal?.throwIfAborted();
    if (options.index === undefined && options.reuse !== "none") opened = openHomeIndex();
    return await pullWithRetries(link, { ...options, index: opened ?? options.index ?? undefined });
  } catch (err) {
    // Whatever the abort interrupted (a dial, a request, a wait), the caller asked for it.
    throw signal?.aborted === true ? cancelled(err) : err;
  } finally {
    opened?.close();
  }
}

/** pullLink's options with the index settled: the one to use, or none. */
type AttemptOptions = Omit<PullLinkOptions, "index"> & PullOptions;

async function pullWithRetries(link: string | ShareLink, options: AttemptOptions): Promise<PullLinkSummary> {
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
      const waitMs = retryWaitMs({
        attempt,
        retries,
        code: error.code,
        underway,
        cancelled: signal?.aborted === true,
      });
      if (waitMs === undefined) throw error;
      options.onRetry?.({ attempt: attempt + 1, of: retries, error, waitMs });
      await sleep(waitMs, undefined, signal && { signal });
    }
  }
}

/** The chunk index the CLI uses, in TELEPORT_HOME. */
function openHomeIndex(): ChunkIndex {
  const home = teleportHome();
  try {
    return ChunkIndex.open(home);
  } catch (err) {
    throw toTeleportError(err, home);
  }
}

function cancelled(cause: unknown): TeleportError {
  if (cause instanceof TeleportError && cause.code === ErrorCode.CANCELLED) return cause;
  return new TeleportError(ErrorCode.CANCELLED, "pull cancelled", { cause });
}
