/**
 * The auth limiter as a pure unit: the clock is passed in, so a lockout is waited out by moving
 * `now`, not by sleeping.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { AuthLimiter } from "../../src/host/auth-limiter.js";

const WINDOW_MS = 2000;

function failTimes(limiter: AuthLimiter, address: string, times: number, now: number): void {
  for (let i = 0; i < times; i++) limiter.failed(address, now);
}

test("an address is refused after 5 wrong secrets, for the window since its last failure", () => {
  const limiter = new AuthLimiter(WINDOW_MS);
  failTimes(limiter, "10.0.0.1", 4, 1000);
  assert.equal(limiter.refusedFor("10.0.0.1", 1000), 0, "4 failures: still allowed");
  limiter.failed("10.0.0.1", 1500);
  assert.equal(limiter.refusedFor("10.0.0.1", 1500), WINDOW_MS);
  assert.equal(limiter.refusedFor("10.0.0.1", 3000), 500, "counted from the last failure");
  assert.equal(limiter.refusedFor("10.0.0.1", 3500), 0, "the window has passed");
  assert.equal(limiter.refusedFor("10.0.0.1", 3501), 0);
});

test("other addresses are not refused for one address's failures", () => {
  const limiter = new AuthLimiter(WINDOW_MS);
  failTimes(limiter, "10.0.0.1", 5, 0);
  assert.ok(limiter.refusedFor("10.0.0.1", 1) > 0);
  assert.equal(limiter.refusedFor("10.0.0.2", 1), 0);
});

test("failures older than the window are forgotten, so the count starts again", () => {
  const limiter = new AuthLimiter(WINDOW_MS);
  failTimes(limiter, "10.0.0.1", 4, 0);
  failTimes(limiter, "10.0.0.1", 4, WINDOW_MS);
  assert.equal(limiter.refusedFor("10.0.0.1", WINDOW_MS), 0, "4 recent failures, 4 forgotten");
  limiter.failed("10.0.0.1", WINDOW_MS + 1);
  assert.equal(limiter.refusedFor("10.0.0.1", WINDOW_MS + 1), WINDOW_MS);
});

test("a failure during the lockout extends it", () => {
  const limiter = new AuthLimiter(WINDOW_MS);
  failTimes(limiter, "10.0.0.1", 5, 0);
  limiter.failed("10.0.0.1", 1500);
  assert.equal(limiter.refusedFor("10.0.0.1", 2500), 1000);
});

test("memory is bounded: past 10,000 addresses the least recently failed is forgotten first", () => {
  const limiter = new AuthLimiter(WINDOW_MS);
  failTimes(limiter, "second", 5, 0);
  failTimes(limiter, "first", 5, 0);
  for (let i = 0; i < 9_998; i++) limiter.failed(`filler-${i}`, 1);
  assert.ok(limiter.refusedFor("first", 2) > 0, "10,000 addresses: all remembered");
  limiter.failed("second", 3); // seen before "first", but now failed more recently
  limiter.failed("one-more", 4);
  assert.equal(limiter.refusedFor("first", 5), 0, "the least recently failed was forgotten");
  assert.ok(limiter.refusedFor("second", 5) > 0);
});
