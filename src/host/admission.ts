/**
 * How many clients the host serves at once, counted over all its threads in shared memory (a
 * client is its connection that asks for paths; see HostSession). Past the limit a client that
 * can wait (Feature.HOST_BUSY) is refused with the time to retry in, which its pull honours;
 * one that cannot is taken anyway, as before the limit: it would only time out and retry blind.
 */
/** Retry hints are spread over this range, so that clients refused together do not return together. */
const RETRY_AFTER_MIN_MS = 1000;
const RETRY_AFTER_SPREAD_MS = 2000;

export class Admission {
  readonly limit: number;
  /** Clients taken, at index 0: the same memory in every thread of the host. */
  readonly shared: SharedArrayBuffer;
  readonly #taken: Int32Array;

  constructor(limit: number, shared = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT)) {
    this.limit = limit;
    this.shared = shared;
    this.#taken = new Int32Array(shared);
  }

  /** Takes a client, unless the host is full and the client can wait; release() it once. */
  admit(canWait: boolean): boolean {
    const taken = Atomics.add(this.#taken, 0, 1) + 1;
    if (taken <= this.limit || !canWait) return true;
    Atomics.sub(this.#taken, 0, 1);
    return false;
  }

  release(): void {
    Atomics.sub(this.#taken, 0, 1);
  }

  get taken(): number {
    return Atomics.load(this.#taken, 0);
  }

  /** When a refused client should try again. */
  retryAfterMs(): number {
    return RETRY_AFTER_MIN_MS + Math.floor(Math.random() * RETRY_AFTER_SPREAD_MS);
  }
}
