/**
 * Slows down guessing of a share's secret without locking out the right one: every proof is
 * checked, a correct one is accepted at once, and a wrong one is answered only after a delay
 * that grows with the address's recent failures. Refusing an address outright would let anyone
 * behind the same NAT, or everyone behind a reverse proxy or SSH tunnel (all 127.0.0.1), lock
 * out the link's rightful holders with a few wrong connections.
 *
 * Failures are forgotten once the window has passed since an address's last one. Memory is
 * bounded: at most MAX_ADDRESSES are remembered, the least recently failed forgotten first.
 */
/** Wrong proofs from an address answered without delay (a mistyped link, a retry). */
const FREE_FAILURES = 2;
/** The first delay; each further failure doubles it, up to MAX_DELAY_MS. */
const FIRST_DELAY_MS = 250;
/** Below the handshake timeout: a delayed refusal still ends the connection soon. */
const MAX_DELAY_MS = 8000;
const MAX_ADDRESSES = 10_000;

interface Failures {
  failures: number;
  lastFailure: number;
}

/**
 * What a session asks of the limiter: the delay before refusing a wrong proof from an address,
 * from the limiter itself or, in a host thread, from the one limiter in the main thread.
 */
export interface RefusalDelays {
  readonly windowMs: number;
  failed(address: string): number | Promise<number>;
}

export class AuthLimiter implements RefusalDelays {
  /** How long an address's failures are remembered after its last. */
  readonly windowMs: number;
  readonly #now: () => number;
  readonly #byAddress = new Map<string, Failures>();

  /**
   * `windowMs`: how long an address's failures are remembered after its last; `now`: the clock
   * in milliseconds (tests pass their own).
   */
  constructor(windowMs: number, now: () => number = () => performance.now()) {
    this.windowMs = windowMs;
    this.#now = now;
  }

  /** Counts a wrong proof from `address`; returns how long to wait before refusing it (ms). */
  failed(address: string): number {
    const now = this.#now();
    const record: Failures = this.#current(address, now) ?? { failures: 0, lastFailure: now };
    record.failures++;
    record.lastFailure = now;
    this.#byAddress.delete(address); // re-inserted last: the map is in order of last failure
    this.#byAddress.set(address, record);
    for (const oldest of this.#byAddress.keys()) {
      if (this.#byAddress.size <= MAX_ADDRESSES) break;
      this.#byAddress.delete(oldest);
    }
    return refusalDelayMs(record.failures);
  }

  /** Recent wrong proofs from `address` (0 once the window since its last has passed). */
  failures(address: string): number {
    return this.#current(address, this.#now())?.failures ?? 0;
  }

  #current(address: string, now: number): Failures | undefined {
    const record = this.#byAddress.get(address);
    if (record !== undefined && now - record.lastFailure >= this.windowMs) {
      this.#byAddress.delete(address);
      return undefined;
    }
    return record;
  }
}

/** The delay before refusing the `failures`-th recent wrong proof from one address. */
export function refusalDelayMs(failures: number): number {
  if (failures <= FREE_FAILURES) return 0;
  return Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (failures - FREE_FAILURES - 1));
}
