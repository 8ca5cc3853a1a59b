/**
 * The current transfer rate: bytes over the last RATE_WINDOW_MS, not the average since the
 * start, so a stall or a speed-up shows within seconds. The clock is passed in.
 */

/** Long enough to smooth the bursts of batched chunks, short enough to follow the link. */
export const RATE_WINDOW_MS = 3000;
/** Less than this since the first count (the first batch landed): too little to say a rate. */
const MIN_SPAN_MS = 500;

interface Sample {
  at: number;
  bytes: number;
}

export class TransferRate {
  readonly #windowMs: number;
  #samples: Sample[] = [];

  constructor(windowMs = RATE_WINDOW_MS) {
    this.#windowMs = windowMs;
  }

  /** `bytes` so far (a running total), at `at` ms. */
  add(at: number, bytes: number): void {
    this.#samples.push({ at, bytes });
  }

  /** Forgets the counts: a new attempt counts from 0 again. */
  reset(): void {
    this.#samples = [];
  }

  /** Bytes a second over the window ending at `now`; undefined before MIN_SPAN_MS of samples. */
  perSecond(now: number): number | undefined {
    const samples = this.#samples;
    // One sample at or before the window's start stays, as the base the window counts from.
    while (samples.length >= 2 && (samples[1]?.at ?? now) <= now - this.#windowMs) samples.shift();
    const base = samples[0];
    const latest = samples.at(-1);
    if (base === undefined || latest === undefined || now - base.at < MIN_SPAN_MS) return undefined;
    return ((latest.bytes - base.bytes) * 1000) / (now - base.at);
  }
}
