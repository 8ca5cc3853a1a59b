/**
 * When a pull that failed runs again, as a pure function of the failure (no clock, no sleep), so
 * that the policy is tested on its own: pull-link.ts does the waiting.
 */
import { ErrorCode } from "../errors.js";

/** 0.5 + 1 + 2 + 4 + 8 s: a host restarted within ~15 s is picked up again. */
export const DEFAULT_RETRIES = 5;

const FIRST_WAIT_MS = 500;
const MAX_WAIT_MS = 8000;
/** The longest a busy host's retryAfterMs is taken as it is: a hostile host cannot park a pull. */
const MAX_BUSY_WAIT_MS = 60_000;

/**
 * Errors another run may cure: a lost, silent or tampered-with connection, and a file that changed on the host
 * while it was being pulled (its bytes no longer match the manifest's hashes, or it got shorter):
 * the next run lists it again and fetches what it is now. Nothing unverified is ever written,
 * so a file never ends up a mix of two versions.
 */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.CONNECTION,
  ErrorCode.TIMEOUT,
  ErrorCode.FILE_CHANGED,
  ErrorCode.CHUNK_CORRUPT,
  ErrorCode.TAMPERED,
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
  /** HOST_BUSY: when the host asked to be tried again. */
  retryAfterMs?: number | undefined;
}

/**
 * Milliseconds to wait before running again, doubling from 0.5 s to 8 s; undefined to give up.
 * A busy host is waited for as long as it asks (up to a minute), even before the pull was
 * under way: it answered, and said when it will take the pull.
 */
export function retryWaitMs(failure: RunFailure): number | undefined {
  const { attempt, retries, code, underway, cancelled } = failure;
  if (attempt >= retries || cancelled) return undefined;
  if (code === ErrorCode.HOST_BUSY) return busyWaitMs(failure.retryAfterMs, attempt);
  if (!underway || !RETRYABLE.has(code)) return undefined;
  return backoffMs(attempt);
}

function backoffMs(attempt: number): number {
  return Math.min(FIRST_WAIT_MS * 2 ** attempt, MAX_WAIT_MS);
}

function busyWaitMs(retryAfterMs: number | undefined, attempt: number): number {
  if (retryAfterMs === undefined) return backoffMs(attempt);
  return Math.min(Math.max(retryAfterMs, FIRST_WAIT_MS), MAX_BUSY_WAIT_MS);
}
