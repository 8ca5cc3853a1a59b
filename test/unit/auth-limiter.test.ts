/**
 * The auth limiter as a pure unit: the clock is passed in, so the window is waited out by moving
 * `now`, not by sleeping.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { AuthLimiter, refusalDelayMs } from "../../src/host/auth-limiter.js";

const WINDOW_MS = 2000;

/** A limiter on a clock the test moves. */
function limiterAt(start: number): { limiter: AuthLimiter; clock: { now: number } } {
  const clock = { now: start };
  return { limiter: new AuthLimiter(WINDOW_MS, () => clock.now), clock };
}

function failTimes(limiter: AuthLimiter, address: string, times: number): number[] {
  return Array.from({ length: times }, () => limiter.failed(address));
}

test("wrong proofs from one address are refused after a delay that grows, up to a bound", () => {
  const { limiter } = limiterAt(1000);
  assert.deepEqual(failTimes(limiter, "10.0.0.1", 8), [0, 0, 250, 500, 1000, 2000, 4000, 8000]);
  assert.equal(limiter.failed("10.0.0.1"), 8000, "bounded");
  assert.equal(refusalDelayMs(1_000_000), 8000, "no overflow however many");
});

test("other addresses are not delayed for one address's failures", () => {
  const { limiter } = limiterAt(0);
  failTimes(limiter, "10.0.0.1", 6);
  assert.equal(limiter.failures("10.0.0.2"), 0);
  assert.equal(limiter.failed("10.0.0.2"), 0);
});

test("failures older than the window are forgotten, counted from the last one", () => {
  const { limiter, clock } = limiterAt(0);
  failTimes(limiter, "10.0.0.1", 5);
  clock.now = WINDOW_MS - 1;
  assert.equal(limiter.failures("10.0.0.1"), 5, "still within the window");
  limiter.failed("10.0.0.1"); // the window now runs from here
  clock.now = 2 * WINDOW_MS - 2;
  assert.equal(limiter.failures("10.0.0.1"), 6);
  clock.now = 2 * WINDOW_MS - 1;
  assert.equal(limiter.failures("10.0.0.1"), 0, "the window has passed");
  assert.equal(limiter.failed("10.0.0.1"), 0, "the count starts again");
});

test("memory is bounded: past 10,000 addresses the least recently failed is forgotten first", () => {
  const { limiter, clock } = limiterAt(0);
  failTimes(limiter, "second", 5);
  failTimes(limiter, "first", 5);
  clock.now = 1;
  for (let i = 0; i < 9_998; i++) limiter.failed(`filler-${i}`);
  assert.equal(limiter.failures("first"), 5, "10,000 addresses: all remembered");
  limiter.failed("second"); // seen before "first", but now failed more recently
  limiter.failed("one-more");
  assert.equal(limiter.failures("first"), 0, "the least recently failed was forgotten");
  assert.equal(limiter.failures("second"), 6);
});
