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
  /** This thread's clients taken, by HELLO's clientId: how many of their connections asked paths. */
  readonly #local = new Map<string, number>();

  constructor(limit: number, shared = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT)) {
    this.limit = limit;
    this.shared = shared;
    this.#taken = new Int32Array(shared);
  }

  /** Takes a client, unless the host is full and the client can wait; release() it once. */
  admit(canWait: boolean, clientId?: string): boolean {
    const taken = Atomics.add(this.#taken, 0, 1) + 1;
    if (taken > this.limit && canWait) {
      Atomics.sub(this.#taken, 0, 1);
      return false;
    }
    if (clientId !== undefined) this.#local.set(clientId, (this.#local.get(clientId) ?? 0) + 1);
    return true;
  }

  release(clientId?: string): void {
    Atomics.sub(this.#taken, 0, 1);
    if (clientId === undefined) return;
    const connections = this.#local.get(clientId) ?? 0;
    if (connections > 1) this.#local.set(clientId, connections - 1);
    else this.#local.delete(clientId);
  }

  /**
   * Whether to serve a data stream that moved to this thread from the thread its client asked
   * its paths on (a QUIC stream of a client that connected over TCP: the main thread serves
   * QUIC alone). Only while the client is the host's one: a transport trial compares what
   * each transport's streams deliver, and with other clients served that measures which of
   * the host's threads is less busy, not the path, so every client would move onto one core.
   * Refused, the client's trial fails and its streams stay where they were.
   */
  takesMovedStream(clientId: string | undefined): boolean {
    return this.taken <= 1 || (clientId !== undefined && this.#local.has(clientId));
  }

  get taken(): number {
    return Atomics.load(this.#taken, 0);
  }

  /** When a refused client should try again. */
  retryAfterMs(): number {
    return RETRY_AFTER_MIN_MS + Math.floor(Math.random() * RETRY_AFTER_SPREAD_MS);
  }
}
