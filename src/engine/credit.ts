/**
 * Per-request flow control. A response stream may send only as many body bytes as its receiver
 * has granted (in the request, then in CREDIT frames as it consumes), so one slow consumer
 * cannot fill the other side's memory and one request cannot starve others on the connection.
 */
import { ErrorCode, TeleportError } from "../errors.js";

export class CreditGate {
  #available: number;
  #waiter: { bytes: number; resolve: () => void; reject: (err: Error) => void } | undefined;

  constructor(initial: number) {
    this.#available = initial;
  }

  get available(): number {
    return this.#available;
  }

  grant(bytes: number): void {
    this.#available += bytes;
    const waiter = this.#waiter;
    if (waiter !== undefined && this.#available >= waiter.bytes) {
      this.#waiter = undefined;
      this.#available -= waiter.bytes;
      waiter.resolve();
    }
  }

  /** Waits until `bytes` of credit are available and takes them. */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.#waiter !== undefined) throw new Error("CreditGate allows one waiter at a time");
    if (this.#available >= bytes) {
      this.#available -= bytes;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiter = undefined;
        reject(new TeleportError(ErrorCode.CANCELLED, "request cancelled"));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiter = {
        bytes,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject,
      };
    });
  }
}
