/**
 * What a relay bounds, so that nobody can make it hold more than it chose to: counts (hosts,
 * connections, pending connects), times (a first frame, a host's accept, silence), and rates
 * (new connections per address, frames per connection, spliced bytes per host and per
 * connection). Every number here is a default `teleport relay` can change.
 */

export interface RelayLimits {
  /** Hosts registered at once. */
  maxHosts: number;
  /** Open TCP connections of every kind, spliced ones included (each splice is two). */
  maxConnections: number;
  /** Open connections from one address. */
  maxConnectionsPerAddress: number;
  /** Clients waiting for one host's accept leg. */
  maxPendingPerHost: number;
  /** Spliced connections of one host at once (a pull uses up to ~33: a control and its streams). */
  maxSplicedPerHost: number;
  /** A connection's first frame must come within this. */
  firstFrameTimeoutMs: number;
  /** A host's accept leg must come within this of its INCOMING. */
  pendingTimeoutMs: number;
  /** A control or service connection silent this long is closed (peers PING at a third of it). */
  idleTimeoutMs: number;
  /** A spliced connection silent both ways this long is closed. */
  splicedIdleTimeoutMs: number;
  /** New connections per second from one address (a burst of twice this is allowed). */
  connectionsPerSecond: number;
  /** Frames per second on one connection before it is spliced (a burst of twice this). */
  framesPerSecond: number;
  /** Spliced bytes per second of one host, both ways and over all its connections; 0: unbounded. */
  hostBytesPerSecond: number;
  /** Spliced bytes per second of one connection, both ways; 0: unbounded. */
  connectionBytesPerSecond: number;
}

export const DEFAULT_RELAY_LIMITS: Readonly<RelayLimits> = {
  maxHosts: 1024,
  maxConnections: 8192,
  maxConnectionsPerAddress: 256,
  maxPendingPerHost: 64,
  maxSplicedPerHost: 512,
  firstFrameTimeoutMs: 10_000,
  pendingTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  splicedIdleTimeoutMs: 600_000,
  connectionsPerSecond: 100,
  framesPerSecond: 50,
  hostBytesPerSecond: 0,
  connectionBytesPerSecond: 0,
};

/**
 * A token bucket: `take(n)` spends n tokens and says how long to wait before spending more (0
 * while within the rate). Refilled at `perSecond`, holding at most `burst`. The clock is passed
 * in, so the policy is tested on its own.
 */
export class TokenBucket {
  readonly #perSecond: number;
  readonly #burst: number;
  #tokens: number;
  #at: number;

  constructor(perSecond: number, burst: number, nowMs: number) {
    this.#perSecond = perSecond;
    this.#burst = burst;
    this.#tokens = burst;
    this.#at = nowMs;
  }

  /** Spends `amount`; returns the milliseconds until the bucket is no longer in debt. */
  take(amount: number, nowMs: number): number {
    this.#tokens = Math.min(this.#burst, this.#tokens + ((nowMs - this.#at) * this.#perSecond) / 1000);
    this.#at = nowMs;
    this.#tokens -= amount;
    return this.#tokens >= 0 ? 0 : (-this.#tokens * 1000) / this.#perSecond;
  }

  /** Whether `amount` can be spent now without debt; spends it if so. */
  tryTake(amount: number, nowMs: number): boolean {
    if (this.take(0, nowMs) > 0 || this.#tokens < amount) return false;
    this.#tokens -= amount;
    return true;
  }
}
