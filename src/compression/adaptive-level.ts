/**
 * The compression level of one connection, adapted while it runs (zstd's `--adapt`, on the
 * host's side): harder while the compressor has time to spare, lighter once it holds the
 * transfer up.
 *
 * The measure is the compressor's share of the connection's time: the wall time of each group's
 * compression (hand-off to result, waiting for a thread included) over the time passed. Under a
 * slow link the sending waits on the socket and the compressor idles, so a harder level costs
 * nothing and saves bytes; once the compressor is busy most of the time it is what the transfer
 * waits for, and the level comes down. Many clients sharing the host's compression threads
 * make every job wait longer, which brings all their levels down together. When even level 1
 * is busy that much, chunks go as they are (level 0, unless the client asked for compression
 * always), and level 1 is tried again every PROBE_MS: a link faster than the compressor (10 GbE,
 * a fast long path) is never slowed down by it for long.
 */

/**
 * Levels in the order tried, 0 for none. Past 9 the steps are coarser: each costs 2-3x the time
 * of the one before for a few percent of ratio, worth it only on a slower link
 * (docs/decisions.md, "zstd levels").
 */
export const ADAPTIVE_LEVELS: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 19];
const START_LEVEL = 3;

/** The level moves at most once per this long, and per MIN_JOBS groups. */
const PERIOD_MS = 200;
const MIN_JOBS = 2;
/** Compressing more than this share of the time: one level lighter. */
const BUSY_HIGH = 0.8;
/** Less than this: one level harder (the next level is often half as fast). */
const BUSY_LOW = 0.4;
/** After this long without compressing, level 1 is tried again. */
const PROBE_MS = 2000;

export class AdaptiveLevel {
  /** The lowest step: 0 (none) or 1 (level 1, when compression was asked for always). */
  readonly #lowest: number;
  #step = ADAPTIVE_LEVELS.indexOf(START_LEVEL);
  #busyMs = 0;
  #jobs = 0;
  #since: number;

  constructor(options: { always?: boolean } = {}, now = performance.now()) {
    this.#lowest = options.always === true ? 1 : 0;
    this.#since = now;
  }

  /** The level for the next group; 0: send it as it is. */
  level(now = performance.now()): number {
    if (this.#step === 0 && now - this.#since >= PROBE_MS) this.#restart(1, now);
    return ADAPTIVE_LEVELS[this.#step] as number;
  }

  /** A group compressed at `level` took `ms`, from hand-off to result; `now` is when it ended. */
  compressed(ms: number, now = performance.now()): void {
    this.#busyMs += ms;
    this.#jobs++;
    const elapsed = now - this.#since;
    if (elapsed < PERIOD_MS || this.#jobs < MIN_JOBS) return;
    const busy = this.#busyMs / elapsed;
    if (busy > BUSY_HIGH) this.#restart(Math.max(this.#lowest, this.#step - 1), now);
    else if (busy < BUSY_LOW) this.#restart(Math.min(ADAPTIVE_LEVELS.length - 1, this.#step + 1), now);
    else this.#restart(this.#step, now);
  }

  #restart(step: number, now: number): void {
    this.#step = step;
    this.#busyMs = 0;
    this.#jobs = 0;
    this.#since = now;
  }
}
