/**
 * A file's chunk list as its MANIFEST streams in: a read waits only until the list describes its
 * range, not for FILE_END (a cold host hashes a big file as it sends the list). Each chunk is
 * still checked against its own hash when fetched; the whole list is checked at FILE_END.
 */
import type { ChunkRef } from "../wire/messages.js";

export class ChunkListing {
  readonly chunks: ChunkRef[] = [];
  readonly #size: number;
  /** How far the list describes the file: chunks, and the holes before them. */
  #described = 0;
  #complete = false;
  #failure: { reason: unknown } | undefined;
  readonly #waiters = new Set<() => void>();

  constructor(size: number) {
    this.#size = size;
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  /** Chunks already checked (in order, inside the file) by the caller's ChunkSequence. */
  add(chunks: readonly ChunkRef[]): void {
    this.chunks.push(...chunks);
    const last = chunks.at(-1);
    if (last !== undefined) this.#described = last.offset + last.size;
    this.#wake();
  }

  /** FILE_END checked: what no chunk covers up to the size is a hole. */
  complete(): void {
    this.#complete = true;
    this.#described = this.#size;
    this.#wake();
  }

  fail(reason: unknown): void {
    this.#failure = { reason };
    this.#wake();
  }

  /** Resolves once the list describes [0, end); throws the list's failure, or `signal`'s. */
  async until(end: number, signal: AbortSignal): Promise<void> {
    for (;;) {
      if (this.#failure !== undefined) throw this.#failure.reason;
      if (this.#complete || this.#described >= end) return;
      signal.throwIfAborted();
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        signal.addEventListener("abort", onAbort, { once: true });
        this.#waiters.add(() => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        });
      });
    }
  }

  #wake(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }
}
