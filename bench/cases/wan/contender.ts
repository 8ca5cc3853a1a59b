/**
 * A tool measured on a WAN link: one warm-up (which may take a few runs while it finds its
 * payload size), then timed runs, each a Sample of throughput and cost.
 */

import type { RunCost } from "../../lib/stats.js";
import type { Figure } from "../../lib/types.js";
import { type PayloadLadder, rungAbove, rungFor, type SharedPayload } from "./ladder.js";

export interface Sample extends RunCost {
  mbit: number;
  wallSeconds: number;
  details: Record<string, unknown>;
}

export interface Contender {
  tool: string;
  role: Figure["role"];
  /** Moves a payload, so MB/s means something (iperf3 moves memory). */
  transfer: boolean;
  warmUp(): Promise<Sample[]>;
  measure(): Promise<Sample>;
  details(): Record<string, unknown>;
}

/**
 * A shorter run measures startup and slow start, not throughput (on a lossy link, slow-start
 * luck). Such a run, warm-up or timed, is repeated one rung up; one rung, not the rung its rate
 * calls for, since that rate is the luck. Measured cases: docs/decisions.md, "WAN payload ladder".
 */
const MIN_RUN_SECONDS = 3;
/** From 16 MiB, enough to reach 256 MiB: a tool that fills the lossy link warms up to its payload. */
const MAX_WARMUPS = 4;

/** A copy of one shared payload, measured and verified. */
export interface SizedTransfer {
  tool: string;
  role: Figure["role"];
  /** Mbit/s expected before any run: sizes the first warm-up. */
  expectedMbit: number;
  details: Record<string, unknown>;
  run(file: SharedPayload): Promise<Sample>;
}

/**
 * Picks the transfer's payload during its warm-up: the rung for the rate the warm-up saw. A run
 * too short to count, warm-up or timed, is repeated one rung up, and later runs keep that rung.
 */
export function sizedContender(transfer: SizedTransfer, ladder: PayloadLadder): Contender {
  let file = rungFor(ladder, transfer.expectedMbit);
  const largerPayload = (sample: Sample): SharedPayload | null =>
    sample.wallSeconds >= MIN_RUN_SECONDS ? null : rungAbove(ladder, file);
  return {
    tool: transfer.tool,
    role: transfer.role,
    transfer: true,
    warmUp: async () => {
      const samples: Sample[] = [];
      for (let attempt = 0; attempt < MAX_WARMUPS; attempt++) {
        const sample = await transfer.run(file);
        samples.push(sample);
        const larger = largerPayload(sample);
        file = larger ?? rungFor(ladder, sample.mbit);
        if (larger === null) break;
      }
      return samples;
    },
    measure: async () => {
      const sample = await transfer.run(file);
      const larger = largerPayload(sample);
      if (larger === null) return sample;
      file = larger;
      const rerun = await transfer.run(file);
      rerun.details.replacedShortRun = {
        mbit: sample.mbit,
        wallSeconds: sample.wallSeconds,
        ...sample.details,
      };
      return rerun;
    },
    details: () => ({ ...transfer.details, payloadBytes: file.payload.bytes }),
  };
}

/** The same payload every run. */
export function fixedContender(tool: string, role: Figure["role"], run: () => Promise<Sample>): Contender {
  return { tool, role, transfer: true, warmUp: async () => [await run()], measure: run, details: () => ({}) };
}
