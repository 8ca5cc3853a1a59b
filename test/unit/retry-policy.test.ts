/** The pull's retry policy as a pure unit: which failures run again, and after how long. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_RETRIES } from "../../src/client/pull-link.js";
import { type RunFailure, retryWaitMs } from "../../src/client/retry-policy.js";
import { ErrorCode } from "../../src/errors.js";

const failure = (changes: Partial<RunFailure> = {}): RunFailure => ({
  attempt: 0,
  retries: DEFAULT_RETRIES,
  code: ErrorCode.CONNECTION,
  underway: true,
  cancelled: false,
  ...changes,
});

test("the wait doubles from 0.5 s up to 8 s, and stays there", () => {
  const waits = Array.from({ length: 7 }, (_, attempt) => retryWaitMs(failure({ attempt, retries: 10 })));
  assert.deepEqual(waits, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
});

test("the default retries add up to about 15 s: a host restarted within that is picked up again", () => {
  let total = 0;
  for (let attempt = 0; ; attempt++) {
    const waitMs = retryWaitMs(failure({ attempt }));
    if (waitMs === undefined) break;
    total += waitMs;
  }
  assert.equal(total, 500 + 1000 + 2000 + 4000 + 8000);
});

test("gives up after the allowed retries", () => {
  assert.equal(retryWaitMs(failure({ attempt: 2, retries: 3 })), 2000);
  assert.equal(retryWaitMs(failure({ attempt: 3, retries: 3 })), undefined);
  assert.equal(retryWaitMs(failure({ retries: 0 })), undefined);
});

test("lost or tampered-with connections, timeouts, files that changed and busy hosts are retried; nothing else is", () => {
  const retried: ErrorCode[] = [
    ErrorCode.HOST_BUSY,
    ErrorCode.CONNECTION,
    ErrorCode.TIMEOUT,
    ErrorCode.FILE_CHANGED,
    ErrorCode.CHUNK_CORRUPT,
    ErrorCode.TAMPERED,
  ];
  for (const code of Object.values(ErrorCode)) {
    const waitMs = retryWaitMs(failure({ code }));
    assert.equal(waitMs !== undefined, retried.includes(code), `${code}: ${waitMs}`);
  }
});

test("a host unreachable at the start is reported at once, and a cancelled pull is not run again", () => {
  assert.equal(retryWaitMs(failure({ underway: false })), undefined);
  assert.equal(retryWaitMs(failure({ underway: false, attempt: 1 })), undefined);
  assert.equal(retryWaitMs(failure({ cancelled: true })), undefined);
});

test("a busy host is waited for as long as it asks, even before the pull was under way", () => {
  const busy = { code: ErrorCode.HOST_BUSY, underway: false };
  assert.equal(retryWaitMs(failure({ ...busy, retryAfterMs: 2300 })), 2300);
  assert.equal(retryWaitMs(failure({ ...busy, retryAfterMs: 2300, attempt: 3 })), 2300);
  assert.equal(retryWaitMs(failure({ ...busy, retryAfterMs: 0 })), 500, "never sooner than the first wait");
  assert.equal(
    retryWaitMs(failure({ ...busy, retryAfterMs: 3_600_000 })),
    60_000,
    "a host cannot park a pull",
  );
  assert.equal(retryWaitMs(failure({ ...busy, attempt: 1 })), 1000, "no hint: the usual backoff");
  assert.equal(retryWaitMs(failure({ ...busy, retryAfterMs: 2300, attempt: DEFAULT_RETRIES })), undefined);
  assert.equal(retryWaitMs(failure({ ...busy, retryAfterMs: 2300, cancelled: true })), undefined);
});
