/**
 * Slows down guessing of a share's secret: an address that presents a wrong secret MAX_FAILURES
 * times within a window is refused, without its proof being checked, until the window has passed
 * since its last failure. Memory is bounded: at most MAX_ADDRESSES are remembered, the least
 * recently failed forgotten first.
 */
const MAX_FAILURES = 5;
const MAX_ADDRESSES = 10_000;

interface Failures {
  failures: number;
  lastFailure: number;
}

export class AuthLimiter {
  readonly #windowMs: number;
  readonly #byAddress = new Map<string, Failures>();

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  /** Milliseconds until `address` may try again; 0 when it may now. */
  refusedFor(address: string, now = performance.now()): number {
    const record = this.#current(address, now);
    if (record === undefined || record.failures < MAX_FAILURES) return 0;
    return Math.ceil(record.lastFailure + this.#windowMs - now);
  }

  failed(address: string, now = performance.now()): void {
    const record: Failures = this.#current(address, now) ?? { failures: 0, lastFailure: now };
    record.failures++;
    record.lastFailure = now;
    this.#byAddress.delete(address); // re-inserted last: the map is in order of last failure
    this.#byAddress.set(address, record);
    for (const oldest of this.#byAddress.keys()) {
      if (this.#byAddress.size <= MAX_ADDRESSES) break;
      this.#byAddress.delete(oldest);
    }
  }

  #current(address: string, now: number): Failures | undefined {
    const record = this.#byAddress.get(address);
    if (record !== undefined && now - record.lastFailure >= this.#windowMs) {
      this.#byAddress.delete(address);
      return undefined;
    }
    return record;
  }
}
