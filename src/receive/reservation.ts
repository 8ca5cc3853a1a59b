/**
 * Blocks reserved (fallocate) for a file's part file as its data arrives, not as its chunk list
 * is announced: a host can announce a 16 GiB chunk list in one frame and then send nothing. The
 * whole pull keeps at most RESERVED_AHEAD_BYTES reserved beyond the bytes it has written, so a
 * disk without room still fails a file early, and a host cannot fill the disk before any data.
 */
import type { ChunkRef } from "../wire/messages.js";

/** Reserved and not yet written, across a pull. */
const RESERVED_AHEAD_BYTES = 128 * 1024 * 1024;
/** Reserve again only once this much of the allowance is free: a call per slice, not per chunk. */
const RESERVE_STEP_BYTES = 16 * 1024 * 1024;

/** A pull's allowance of blocks reserved ahead of its data. */
export class ReservationBudget {
  /** Bytes reserved and not yet written. */
  ahead = 0;
  readonly limit: number;

  constructor(limit = RESERVED_AHEAD_BYTES) {
    this.limit = limit;
  }
}

/** One part file's runs announced and not yet reserved. */
export class FileReservation {
  readonly #budget: ReservationBudget;
  readonly #reserve: (offset: number, length: number) => void;
  /** [start, end) runs of back-to-back chunks, in order, not yet reserved. */
  readonly #runs: [number, number][] = [];
  /** This file's share of the budget's `ahead`. */
  #ahead = 0;

  constructor(budget: ReservationBudget, reserve: (offset: number, length: number) => void) {
    this.#budget = budget;
    this.#reserve = reserve;
  }

  /** A CHUNKS frame: its runs join the queue; reserved as far as the budget allows. */
  announce(chunks: readonly ChunkRef[]): void {
    for (const chunk of chunks) {
      const last = this.#runs.at(-1);
      if (last !== undefined && last[1] === chunk.offset) last[1] += chunk.size;
      else this.#runs.push([chunk.offset, chunk.offset + chunk.size]);
    }
    this.#fill();
  }

  /** Bytes of the file in place: they free as much of the allowance. */
  written(bytes: number): void {
    const freed = Math.min(bytes, this.#ahead);
    this.#ahead -= freed;
    this.#budget.ahead -= freed;
    if (this.#runs.length > 0 && this.#budget.limit - this.#budget.ahead >= RESERVE_STEP_BYTES) this.#fill();
  }

  /** The file is committed or abandoned: what it held of the allowance goes back. */
  release(): void {
    this.#budget.ahead -= this.#ahead;
    this.#ahead = 0;
    this.#runs.length = 0;
  }

  #fill(): void {
    const budget = this.#budget;
    for (let run = this.#runs[0]; run !== undefined; run = this.#runs[0]) {
      const length = Math.min(run[1] - run[0], budget.limit - budget.ahead);
      if (length <= 0) return;
      this.#reserve(run[0], length);
      budget.ahead += length;
      this.#ahead += length;
      run[0] += length;
      if (run[0] === run[1]) this.#runs.shift();
    }
  }
}
