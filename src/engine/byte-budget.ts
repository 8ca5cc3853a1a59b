/**
 * A number of bytes shared by many users. Requests that do not fit wait in line, one line per
 * owner (a host's client), and the lines take turns: each owner's next request goes in rotation,
 * whatever the number of requests (or connections) an owner has waiting, and a request that does
 * not fit holds up the ones behind it, so a large request is not starved by a stream of small
 * ones. Unlike CreditGate, the bytes are given back by the user, not granted by a peer.
 */
import { ErrorCode, TeleportError } from "../errors.js";

interface Waiter {
  bytes: number;
  resolve: () => void;
  reject: (error: TeleportError) => void;
}

export class ByteBudget {
  readonly limitBytes: number;
  #usedBytes = 0;
  /** Each owner's line; the map's order is the rotation (an owner served goes to the back). */
  readonly #lines = new Map<unknown, Waiter[]>();
  #waiting = 0;

  constructor(limitBytes: number) {
    if (!(limitBytes > 0)) throw new RangeError(`a budget needs a positive limit, got ${limitBytes}`);
    this.limitBytes = limitBytes;
  }

  get usedBytes(): number {
    return this.#usedBytes;
  }

  get waiting(): number {
    return this.#waiting;
  }

  /**
   * Takes `bytes` (at most the whole budget: a larger request waits for all of it and takes all
   * of it), waiting in `owner`'s line for them. Rejects with CANCELLED if `signal` aborts while
   * waiting. Returns how many bytes were taken, which is what `give` must be given back.
   */
  take(bytes: number, signal?: AbortSignal, owner: unknown = undefined): Promise<number> {
    const wanted = Math.min(bytes, this.limitBytes);
    if (signal?.aborted) return Promise.reject(cancelled());
    if (this.#waiting === 0 && this.#usedBytes + wanted <= this.limitBytes) {
      this.#usedBytes += wanted;
      return Promise.resolve(wanted);
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const line = this.#lines.get(owner) ?? [];
        const at = line.indexOf(waiter);
        if (at >= 0) {
          line.splice(at, 1);
          this.#waiting--;
          if (line.length === 0) this.#lines.delete(owner);
        }
        reject(cancelled());
        this.#wake(); // the next in turn may fit now that this one left
      };
      const waiter: Waiter = {
        bytes: wanted,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve(wanted);
        },
        reject,
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      const line = this.#lines.get(owner);
      if (line === undefined) this.#lines.set(owner, [waiter]);
      else line.push(waiter);
      this.#waiting++;
    });
  }

  /** Gives back bytes returned by `take`, and lets waiters that now fit go, in turn. */
  give(bytes: number): void {
    if (bytes > this.#usedBytes)
      throw new Error(`budget given back more than was taken (${bytes} of ${this.#usedBytes} bytes)`);
    this.#usedBytes -= bytes;
    this.#wake();
  }

  #wake(): void {
    for (const [owner, line] of this.#lines) {
      const next = line[0] as Waiter;
      if (this.#usedBytes + next.bytes > this.limitBytes) return;
      line.shift();
      this.#waiting--;
      this.#usedBytes += next.bytes;
      // To the back of the rotation (or out of it): the next owner's turn comes first.
      this.#lines.delete(owner);
      if (line.length > 0) this.#lines.set(owner, line);
      next.resolve();
    }
  }
}

function cancelled(): TeleportError {
  return new TeleportError(ErrorCode.CANCELLED, "request cancelled");
}
