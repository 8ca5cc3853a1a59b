/**
 * The pull's work in flight (fetches, local copies, commits) and its failure: the first error
 * stops everything, and whatever waits for progress wakes up to see it.
 */
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";

export class Work {
  readonly #pending = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #wakeUp: (() => void) | undefined;
  #failure: TeleportError | undefined;

  /** Aborted on the first failure. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  get size(): number {
    return this.#pending.size;
  }

  /** Runs `work` alongside the manifest: its end wakes up a waiter, its error fails the pull. */
  track(work: Promise<void>): void {
    const tracked = work.then(
      () => {
        this.#pending.delete(tracked);
        this.#wakeUp?.();
      },
      (err: unknown) => {
        this.#pending.delete(tracked);
        this.fail(toTeleportError(err));
      },
    );
    this.#pending.add(tracked);
  }

  /** Resolves when some tracked work ends; rejects if the pull has failed. */
  next(): Promise<void> {
    this.throwIfFailed();
    return new Promise<void>((resolve) => {
      this.#wakeUp = () => {
        this.#wakeUp = undefined;
        resolve();
      };
    }).then(() => this.throwIfFailed());
  }

  /** Waits for every tracked work to end (the first error fails the pull). */
  async drain(): Promise<void> {
    while (this.#pending.size > 0) await Promise.race(this.#pending);
  }

  /** Waits for every tracked work to end, failed or not. */
  async settle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  fail(error: TeleportError): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    this.#abort.abort(error);
    this.#wakeUp?.();
  }

  throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** The failure (after fail). */
  get error(): TeleportError {
    return this.#failure ?? new TeleportError(ErrorCode.INTERNAL, "the pull has not failed");
  }
}
