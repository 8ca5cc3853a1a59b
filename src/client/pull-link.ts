/**
 * A pull from a share link that outlives its connections and changing files: when the host goes
 * away or stops answering mid-pull, or a file changes under it, it reconnects with backoff and
 * runs again. Every run resumes what the last left (journaled chunks, finished files, through
 * the chunk index), so a retry fetches what is missing, not the whole pull again. A host that
 * cannot be reached at the start is reported at once: retries are for pulls that were under way.
 * Its `onProgress` hears each attempt's events, a `retry` before each wait, and one `done` with
 * the totals of every attempt.
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
import { prestartStreamWorkers, stopSpareStreamWorkers } from "./pool/stream-threads.js";
import {
  type PullEvent,
  type PullOptions,
  type PullSummary,
  type PullTotals,
  pull,
  type RetryEvent,
} from "./pull.js";
import { DEFAULT_RETRIES, retryWaitMs } from "./retry-policy.js";

export type { Retry } from "./pull.js";

export interface PullLinkOptions extends Omit<PullOptions, "index"> {
  /**
   * The chunk index the pull dedups and resumes with. Default: the CLI's, in TELEPORT_HOME
   * (`teleportHome()`), opened for this pull and closed after it. An index given is used and
   * left open; `null` pulls without one (every byte fetched, nothing resumed or recorded).
   */
  index?: ChunkIndex | null;
  /** How to reach the host (default `auto`). */
  transport?: TransportChoice;
  /** How long the host's own address has before the link's relay is dialed (see dialChoice). */
  relayHeadStartMs?: number;
  /** Runs after the first fails with a RETRYABLE error mid-pull; default DEFAULT_RETRIES. */
  retries?: number;
}

/** The last attempt's summary, with the totals of every attempt. */
export interface PullLinkSummary extends PullSummary {
  /** Runs it took, the last one complete: 1 without a retry. */
  attempts: number;
  totals: PullTotals;
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
  const attempts = new AttemptTotals(options.onProgress);
  const attemptOptions = { ...options, onProgress: (event: PullEvent) => attempts.observe(event) };
  for (let attempt = 0; ; attempt++) {
    let connected = false;
    try {
      // The pull's options are the connection's too, by the same names (ConnectOptions).
      const client = await TeleportClient.connect(link, options);
      connected = true;
      // The data streams' threads boot while the manifest's first round trip runs; not sooner,
      // where they would slow the handshake the first stream count is chosen by (QUIC streams
      // run in this thread).
      if (client.transport === "tcp") prestartStreamWorkers(options.streams);
      try {
        return attempts.complete(await pull(client, attemptOptions));
      } finally {
        stopSpareStreamWorkers(); // idle ones, should the pull have needed none: not left to a library's process
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
        retryAfterMs: error.retryAfterMs,
      });
      if (waitMs === undefined) throw error;
      attempts.retry({ type: "retry", attempt: attempt + 1, of: retries, error, waitMs });
      await sleep(waitMs, undefined, signal && { signal }); // an abort here: see pullLink
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
