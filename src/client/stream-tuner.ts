/**
 * Sizes a pull's data streams to the path, from what the pull measures: the bytes delivered so
 * far and the round-trip time of pings on the control connection.
 *
 * - Bytes in flight follow the bandwidth-delay product: twice the best rate seen times the
 *   lowest RTT, never below the floor. A window-limited transfer delivers window / RTT, so the
 *   window doubles each measurement until something else limits the rate.
 * - The stream count is probed upwards: after each change the new streams get a moment to leave
 *   slow start, then the rate is measured. A count that delivers clearly more than the one before
 *   is multiplied again (by four when the rate scaled almost linearly, as it does while each
 *   stream is held back by loss); one that does not, or that inflates the RTT (queues filling
 *   up), ends the probe, and the count goes back to the best one measured.
 *
 * Everything is in bytes, bytes per second and milliseconds; nothing here touches a socket, so
 * the policy is tested with made-up measurements.
 */

export interface TunerOptions {
  /** Streams to start with. */
  initialStreams: number;
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
  reason: "start" | "grew" | "scaled" | "settled" | "reverted";
}

/** A count delivering at least this much more than the one before is worth growing from. */
const GROWTH_GAIN = 1.15;
/** A doubling that gained this much: the streams are each held back, so multiply by four. */
const LINEAR_GAIN = 1.6;
/** The RTT has inflated (queues filling) when it exceeds the lowest seen by this factor... */
const RTT_INFLATION = 2;
/** ...plus this, which keeps loopback's jitter of a millisecond or two from counting. */
const RTT_SLACK_MS = 10;
/** Time the new streams get to leave slow start before the rate counts: the larger of these. */
const SETTLE_MS = 150;
const SETTLE_RTTS = 3;
/** The rate is measured over the larger of these. */
const MEASURE_MS = 400;
const MEASURE_RTTS = 8;
/** Bytes in flight per byte of bandwidth-delay product. */
const WINDOW_BDP_FACTOR = 2;

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
   * or the window changed.
   */
  observe(nowMs: number, deliveredBytes: number): boolean {
    const rtt = this.minRttMs ?? 0;
    const settleMs = Math.max(SETTLE_MS, SETTLE_RTTS * rtt);
    const measureMs = Math.max(MEASURE_MS, MEASURE_RTTS * rtt);
    if (this.#measureFrom === undefined) {
      if (nowMs - this.#changedAtMs < settleMs) return false;
      this.#measureFrom = { atMs: nowMs, bytes: deliveredBytes };
      return false;
    }
    const elapsedMs = nowMs - this.#measureFrom.atMs;
    if (elapsedMs < measureMs) return false;
    const rate = ((deliveredBytes - this.#measureFrom.bytes) * 1000) / elapsedMs;
    this.#measureFrom = { atMs: nowMs, bytes: deliveredBytes };
    const windowChanged = this.#sizeWindow(rate);
    if (this.#settled) return windowChanged;
    return this.#decide(nowMs, rate) || windowChanged;
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
    const previous = this.#previous;
    const gain = previous === undefined || previous.bytesPerSecond === 0 ? Infinity : rate / previous.bytesPerSecond;
    const inflated =
      this.#smoothedRttMs !== undefined &&
      this.minRttMs !== undefined &&
      this.#smoothedRttMs > RTT_INFLATION * this.minRttMs + RTT_SLACK_MS;
    if (gain >= GROWTH_GAIN && !inflated && this.streams < this.#options.maxStreams) {
      const factor = previous !== undefined && gain >= LINEAR_GAIN ? 4 : 2;
      this.#previous = { streams: this.streams, bytesPerSecond: rate };
      this.#change(nowMs, Math.min(this.#options.maxStreams, this.streams * factor), rate, factor === 4 ? "scaled" : "grew");
      return true;
    }
    this.#settled = true;
    if (previous !== undefined && rate < previous.bytesPerSecond && previous.streams !== this.streams) {
      this.#change(nowMs, previous.streams, rate, "reverted");
      return true;
    }
    this.steps.push({ atMs: nowMs - this.#startedAt, streams: this.streams, measuredBytesPerSecond: rate, reason: "settled" });
    return false;
  }

  #change(nowMs: number, streams: number, rate: number, reason: TuningStep["reason"]): void {
    this.streams = streams;
    this.#changedAtMs = nowMs;
    this.#measureFrom = undefined;
    this.steps.push({ atMs: nowMs - this.#startedAt, streams, measuredBytesPerSecond: rate, reason });
  }
}
