/**
 * `pull --bwlimit`: one receive rate shared by every data stream of a pool, whichever thread
 * runs it. The schedule is one number in shared memory (a GCRA: the time at which the bytes
 * taken so far will have been paid for), advanced with compare-and-swap, so the threads need no
 * messages to share it. A stream over its share stops reading its socket until the bytes are
 * paid for: the kernel's receive window then holds the host back, as with rsync --bwlimit.
 */
import type { Duplex } from "node:stream";

/** What crosses to each stream thread: the rate and the shared schedule. */
export interface ReceiveLimitSpec {
  bytesPerSecond: number;
  /** Nanoseconds on the process's monotonic clock (process.hrtime), shared by every thread. */
  schedule: BigInt64Array;
}

/**
 * Bytes a stream may take ahead of the schedule after an idle moment: a burst this long
 * keeps the rate over a few seconds within a few percent of the limit.
 */
const BURST_NS = 50_000_000n;
const NS_PER_SECOND = 1e9;

export function receiveLimitSpec(bytesPerSecond: number): ReceiveLimitSpec {
  if (!(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond))
    throw new RangeError(`a receive limit must be a rate above 0, got ${bytesPerSecond}`);
  return { bytesPerSecond, schedule: new BigInt64Array(new SharedArrayBuffer(8)) };
}

export class ReceiveLimit {
  readonly #nsPerByte: number;
  readonly #schedule: BigInt64Array;

  constructor(spec: ReceiveLimitSpec) {
    this.#nsPerByte = NS_PER_SECOND / spec.bytesPerSecond;
    this.#schedule = spec.schedule;
  }

  /** Counts `bytes` received at `nowNs`; returns how many milliseconds to wait before reading on. */
  take(bytes: number, nowNs: bigint = process.hrtime.bigint()): number {
    const cost = BigInt(Math.ceil(bytes * this.#nsPerByte));
    for (;;) {
      const paidUntil = Atomics.load(this.#schedule, 0);
      const from = paidUntil > nowNs - BURST_NS ? paidUntil : nowNs - BURST_NS;
      const next = from + cost;
      if (Atomics.compareExchange(this.#schedule, 0, paidUntil, next) === paidUntil)
        return next > nowNs ? Number(next - nowNs) / 1e6 : 0;
    }
  }

  /**
   * Holds `stream`'s reads to the limit: each arrival is counted, and the stream paused until
   * it is paid for. Only pulls with a limit attach this, so others pay nothing per read.
   */
  throttle(stream: Duplex): void {
    let timer: NodeJS.Timeout | undefined;
    stream.on("data", (data: Buffer) => {
      const waitMs = this.take(data.length);
      if (waitMs < 1 || timer !== undefined) return;
      stream.pause();
      timer = setTimeout(() => {
        timer = undefined;
        if (!stream.destroyed) stream.resume();
      }, waitMs);
    });
    stream.once("close", () => clearTimeout(timer));
  }
}
