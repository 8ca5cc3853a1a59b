/**
 * Sizes a pull's data streams to the path, from what the pull measures: the bytes delivered so
 * far and the round-trip time of pings on the control connection.
 *
 * - Bytes in flight follow the bandwidth-delay product: four times the best rate seen times the
 *   lowest RTT, never below the floor. A window-limited transfer delivers window / RTT, so the
 *   window grows every few round trips until something else limits the rate.
 * - The stream count is probed upwards on paths long enough for it to matter (MIN_PROBE_RTT_MS):
 *   after each change the new streams get a moment to leave slow start, then the rate is
 *   measured until it stops climbing. The first count is doubled; a count that delivers clearly
 *   more than the one before is multiplied again (by four when the rate scaled almost linearly,
 *   as it does while each stream is held back by loss); one that does not, or that inflates the
 *   RTT (queues filling up), ends the probe, and the count goes to the fewest streams that
 *   delivered nearly the best rate.
 * - Nothing is measured before the first bytes arrive: until then the streams are still being
 *   connected, and a rate taken meanwhile would make any later count look like a gain.
 *
 * Everything is in bytes, bytes per second and milliseconds; nothing here touches a socket, so
 * the policy is tested with made-up measurements.
 */

export interface TunerOptions {
  /** Streams to start with. */
  initialStreams: number;
  /**
   * The count for a path shorter than MIN_PROBE_RTT_MS. A pull that started with more, because
   * its first round trips were slow (a busy host answers pings late), goes down to it as soon as
   * a round trip shows the path is short.
   */
  shortPathStreams: number;
  maxStreams: number;
  /** `--streams N`: the count never changes, only the window does. */
  pinned: boolean;
  minWindowBytes: number;
  maxWindowBytes: number;
}

export interface TuningStep {
  /** Milliseconds since the tuner started. */
  atMs: number;
  streams: number;
  /** Delivered rate measured with the previous count, bytes per second (null for the start). */
  measuredBytesPerSecond: number | null;
  reason: "start" | "grew" | "scaled" | "settled" | "reverted" | "short-path";
}

/**
 * A count delivering at least this much more than the one before is worth growing from. Rates
 * measured over MEASURE_MS on loopback vary by up to ~20% with nothing changed; a doubling of
 * loss-bound streams gains ~90%.
 */
const GROWTH_GAIN = 1.3;
/**
 * Paths shorter than this are not probed: at 5 ms a single reno stream recovers from 0.1% loss
 * at ~90 Mbit/s, and what limits a LAN or loopback transfer is CPU, which more streams only
 * share out more thinly (loopback 1 GiB: 4 streams as fast as 2, 64 took 1.5x the time). Pings
 * on loopback measure 0.3-0.9 ms, and a few ms when either event loop is busy.
 */
export const MIN_PROBE_RTT_MS = 5;
/** The most `--streams` accepts. */
export const MAX_STREAMS = 256;
/** A doubling that gained this much: the streams are each held back, so multiply by four. */
const LINEAR_GAIN = 1.6;
/** The RTT has inflated (queues filling) when it exceeds the lowest seen by this factor... */
const RTT_INFLATION = 2;
/** ...plus this, which keeps loopback's jitter of a millisecond or two from counting. */
const RTT_SLACK_MS = 10;
/** Time the new streams get to leave slow start before the rate counts: the larger of these. */
const SETTLE_MS = 100;
const SETTLE_RTTS = 2;
/** The rate is measured over the larger of these. */
const MEASURE_MS = 250;
const MEASURE_RTTS = 5;
/**
 * A count's rate is taken once it stops climbing: when an interval delivers less than this many
 * times the one before, or after MAX_INTERVALS. Each count is measured at least twice.
 */
const STILL_RAMPING = 1.2;
const MAX_INTERVALS = 4;
/** A count within this share of the best rate is as good as the best. */
const NEARLY_BEST = 0.95;
/** The window is resized from the rate over the larger of these. */
const WINDOW_MEASURE_MS = 200;
const WINDOW_MEASURE_RTTS = 2;
/** Bytes in flight per byte of bandwidth-delay product. */
const WINDOW_BDP_FACTOR = 4;

export class StreamTuner {
  readonly #options: TunerOptions;
  readonly #startedAt: number;
  readonly steps: TuningStep[] = [];
  streams: number;
  windowBytes: number;
  #settled: boolean;
  #minRttMs = Number.POSITIVE_INFINITY;
  #smoothedRttMs: number | undefined;
  #bestBytesPerSecond = 0;
  /** The count measured before the current one, and what it delivered. */
  #previous: { streams: number; bytesPerSecond: number } | undefined;
  /** What each count measured delivered. */
  readonly #measured = new Map<number, number>();
  /** The current count's last measured rate, and how many intervals it has been measured. */
  #lastRate: number | undefined;
  #intervals = 0;
  /** When the window last grew: a rate measured meanwhile was bound by it, not by the streams. */
  #windowGrewAtMs = Number.NEGATIVE_INFINITY;
  /** Where the window's current measurement started. */
  #windowFrom: { atMs: number; bytes: number } | undefined;
  /** When the current count's measurement starts, and the bytes delivered by then. */
  #measureFrom: { atMs: number; bytes: number } | undefined;
  #changedAtMs: number;

  constructor(options: TunerOptions, nowMs: number) {
    if (options.initialStreams < 1 || options.maxStreams < options.initialStreams)
      throw new RangeError("stream tuner: need 1 <= initialStreams <= maxStreams");
    this.#options = options;
    this.#startedAt = nowMs;
    this.#changedAtMs = nowMs;
    this.streams = options.initialStreams;
    this.windowBytes = options.minWindowBytes;
    this.#settled = options.pinned || options.initialStreams === options.maxStreams;
    this.steps.push({ atMs: 0, streams: this.streams, measuredBytesPerSecond: null, reason: "start" });
  }

  /** Whether the count is done changing (the window may still grow). */
  get settled(): boolean {
    return this.#settled;
  }

  get minRttMs(): number | undefined {
    return Number.isFinite(this.#minRttMs) ? this.#minRttMs : undefined;
  }

  /** A round trip measured on the path, in milliseconds. */
  rtt(ms: number): void {
    this.#minRttMs = Math.min(this.#minRttMs, ms);
    this.#smoothedRttMs = this.#smoothedRttMs === undefined ? ms : 0.75 * this.#smoothedRttMs + 0.25 * ms;
  }

  /**
   * Takes the bytes delivered since the start, as of `nowMs`; returns true when the stream count
   * or the window changed. `saturated` says whether the streams had all the work they could
   * take: a rate measured while they ran short (a transfer ending, a manifest pausing) says
   * nothing about the path, and such an interval is started over.
   */
  observe(nowMs: number, deliveredBytes: number, saturated = true): boolean {
    const rtt = this.minRttMs ?? 0;
    if (
      !this.#options.pinned &&
      rtt > 0 &&
      rtt < MIN_PROBE_RTT_MS &&
      this.streams > this.#options.shortPathStreams
    ) {
      this.#settled = true;
      this.#change(nowMs, this.#options.shortPathStreams, null, "short-path");
      return true;
    }
    if (deliveredBytes === 0) {
      // The first streams are still connecting: their time to leave slow start starts later.
      this.#changedAtMs = nowMs;
      return false;
    }
    let changed = false;
    // The window follows every few round trips: a window-limited rate doubles each time.
    this.#windowFrom ??= { atMs: nowMs, bytes: deliveredBytes };
    const windowElapsedMs = nowMs - this.#windowFrom.atMs;
    if (windowElapsedMs >= Math.max(WINDOW_MEASURE_MS, WINDOW_MEASURE_RTTS * rtt)) {
      changed = this.#sizeWindow(((deliveredBytes - this.#windowFrom.bytes) * 1000) / windowElapsedMs);
      if (changed) this.#windowGrewAtMs = nowMs;
      this.#windowFrom = { atMs: nowMs, bytes: deliveredBytes };
    }
    if (this.#settled) return changed;
    if (!saturated) {
      // (A tail of 128 MiB over 64 lossy streams measured 67 Mbit/s and sent the count back to 16.)
      if (this.#measureFrom !== undefined) this.#measureFrom = { atMs: nowMs, bytes: deliveredBytes };
      return changed;
    }
    if (this.#measureFrom === undefined) {
      if (nowMs - this.#changedAtMs >= Math.max(SETTLE_MS, SETTLE_RTTS * rtt))
        this.#measureFrom = { atMs: nowMs, bytes: deliveredBytes };
      return changed;
    }
    const elapsedMs = nowMs - this.#measureFrom.atMs;
    if (elapsedMs < Math.max(MEASURE_MS, MEASURE_RTTS * rtt)) return changed;
    const rate = ((deliveredBytes - this.#measureFrom.bytes) * 1000) / elapsedMs;
    this.#measureFrom = { atMs: nowMs, bytes: deliveredBytes };
    // A count that already beats the one before is grown from at once. Otherwise its rate is
    // taken once it stops climbing: a rate still climbing is slow start (or the window
    // growing), not what the count is worth.
    const last = this.#lastRate;
    this.#lastRate = rate;
    this.#intervals++;
    const windowBound = this.#windowGrewAtMs > nowMs - elapsedMs;
    const pays =
      !windowBound && this.#previous !== undefined && rate >= GROWTH_GAIN * this.#previous.bytesPerSecond;
    const climbing = windowBound || last === undefined || rate >= STILL_RAMPING * last;
    if (!pays && climbing && this.#intervals < MAX_INTERVALS) return changed;
    return this.#decide(nowMs, rate) || changed;
  }

  #sizeWindow(bytesPerSecond: number): boolean {
    this.#bestBytesPerSecond = Math.max(this.#bestBytesPerSecond, bytesPerSecond);
    const rttSeconds = (this.minRttMs ?? 0) / 1000;
    const wanted = WINDOW_BDP_FACTOR * this.#bestBytesPerSecond * rttSeconds;
    const window = Math.min(this.#options.maxWindowBytes, Math.max(this.#options.minWindowBytes, wanted));
    // Only grows: a window that shrank with each dip would throttle the rate it measures.
    if (window <= this.windowBytes) return false;
    this.windowBytes = Math.round(window);
    return true;
  }

  #decide(nowMs: number, rate: number): boolean {
    const rtt = this.minRttMs;
    if (rtt === undefined) return false; // no ping answered yet: too early to tell
    this.#measured.set(this.streams, rate);
    const previous = this.#previous;
    const gain =
      previous === undefined || previous.bytesPerSecond === 0 ? Infinity : rate / previous.bytesPerSecond;
    const inflated =
      this.#smoothedRttMs !== undefined &&
      this.minRttMs !== undefined &&
      this.#smoothedRttMs > RTT_INFLATION * this.minRttMs + RTT_SLACK_MS;
    const probing = rtt >= MIN_PROBE_RTT_MS && !inflated && this.streams < this.#options.maxStreams;
    if (probing && gain >= GROWTH_GAIN) {
      // The first probe doubles: a path the first count fills (a clean 100 Mbit/s one) sees few
      // streams added and taken away again, while one that needs many shows a linear gain and
      // goes on by fours (16 -> 32 -> 128 takes as many steps as 16 -> 64 -> 128).
      const factor = previous !== undefined && gain >= LINEAR_GAIN ? 4 : 2;
      this.#previous = { streams: this.streams, bytesPerSecond: rate };
      this.#change(
        nowMs,
        Math.min(this.#options.maxStreams, this.streams * factor),
        rate,
        factor === 4 ? "scaled" : "grew",
      );
      return true;
    }
    this.#settled = true;
    const best = this.#fewestForBestRate();
    if (best !== this.streams) {
      this.#change(nowMs, best, rate, "reverted");
      return true;
    }
    this.steps.push({
      atMs: nowMs - this.#startedAt,
      streams: this.streams,
      measuredBytesPerSecond: rate,
      reason: "settled",
    });
    return false;
  }

  /** The fewest streams that delivered nearly the best rate measured: more only cost memory. */
  #fewestForBestRate(): number {
    const top = Math.max(...this.#measured.values());
    const good = [...this.#measured].filter(([, rate]) => rate >= NEARLY_BEST * top);
    return Math.min(...good.map(([streams]) => streams));
  }

  #change(nowMs: number, streams: number, rate: number | null, reason: TuningStep["reason"]): void {
    this.streams = streams;
    this.#changedAtMs = nowMs;
    this.#measureFrom = undefined;
    this.#lastRate = undefined;
    this.#intervals = 0;
    this.steps.push({ atMs: nowMs - this.#startedAt, streams, measuredBytesPerSecond: rate, reason });
  }
}
