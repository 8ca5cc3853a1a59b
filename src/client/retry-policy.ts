/**
 * When a pull that failed runs again, as a pure function of the failure (no clock, no sleep), so
 * that the policy is tested on its own: pull-link.ts does the waiting.
 */
import { ErrorCode } from "../errors.js";

/** 0.5 + 1 + 2 + 4 + 8 s: a host restarted within ~15 s is picked up again. */
export const DEFAULT_RETRIES = 5;

const FIRST_WAIT_MS = 500;
const MAX_WAIT_MS = 8000;

/**
 * Errors another run may cure: a lost or silent connection, and a file that changed on the host
 * while it was being pulled (its bytes no longer match the manifest's hashes, or it got shorter):
 * the next run lists it again and fetches what it is now. Nothing unverified is ever written,
 * so a file never ends up a mix of two versions.
 */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.CONNECTION,
  ErrorCode.TIMEOUT,
  ErrorCode.FILE_CHANGED,
  ErrorCode.CHUNK_CORRUPT,
]);

export interface RunFailure {
  /** 0 for the first run. */
  attempt: number;
  /** Runs allowed after the first. */
  retries: number;
  code: ErrorCode;
  /** The run had connected, or an earlier one had: a host unreachable at the start is reported at once. */
  underway: boolean;
  cancelled: boolean;
}

/** Milliseconds to wait before running again, doubling from 0.5 s to 8 s; undefined to give up. */
export function retryWaitMs(failure: RunFailure): number | undefined {
  const { attempt, retries, code, underway, cancelled } = failure;
  if (!underway || attempt >= retries || !RETRYABLE.has(code) || cancelled) return undefined;
  return Math.min(FIRST_WAIT_MS * 2 ** attempt, MAX_WAIT_MS);
}
