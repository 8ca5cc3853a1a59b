/**
 * Random test inputs that can be replayed: each run draws one seed (or takes TELEPORT_TEST_SEED),
 * every test that uses it prints it, and all bytes and numbers derive from it.
 */
import type { TestContext } from "node:test";
import { pseudoRandomBytes } from "./tree.js";

function drawSeed(): number {
  const given = process.env.TELEPORT_TEST_SEED;
  if (given !== undefined && given !== "") {
    const seed = Number(given);
    if (!Number.isSafeInteger(seed)) throw new Error(`TELEPORT_TEST_SEED=${given} is not an integer`);
    return seed;
  }
  return Math.floor(Math.random() * 2 ** 32);
}

const runSeed = drawSeed();

/** Random numbers and bytes from one seed: the same seed gives the same sequence. */
export class SeededRandom {
  readonly seed: number;
  #state: number;
  #draws = 0;

  constructor(seed: number) {
    this.seed = seed;
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1) (mulberry32). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let x = this.#state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  }

  /** An integer in [0, bound). */
  below(bound: number): number {
    return Math.floor(this.next() * bound);
  }

  /** `size` incompressible bytes, different on every call. */
  bytes(size: number): Buffer {
    return pseudoRandomBytes(size, `${this.seed}/${this.#draws++}`);
  }
}

/** This run's random source for test `t`, whose output names the seed that replays it. */
export function seededRandom(t: TestContext): SeededRandom {
  t.diagnostic(`random seed ${runSeed} (replay with TELEPORT_TEST_SEED=${runSeed})`);
  return new SeededRandom(runSeed);
}
