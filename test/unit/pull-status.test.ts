/**
 * The CLI's status line on model pulls, with the clock passed in: the rate over a moving window,
 * the ETA on what is left to move, totals formatted from the start.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { PullStatus } from "../../src/cli/pull-status.js";
import { TransferRate } from "../../src/cli/transfer-rate.js";
import { formatDuration } from "../../src/cli/units.js";
import { ErrorCode, TeleportError } from "../../src/errors.js";

const MiB = 1024 * 1024;

test("the rate is the last seconds' rate, not the average since the start, and falls to 0 in a stall", () => {
  const rate = new TransferRate(3000);
  let bytes = 0;
  for (let at = 0; at <= 10_000; at += 100) {
    bytes += at <= 5000 ? MiB : MiB / 10; // 10 MiB/s, then 1 MiB/s
    rate.add(at, bytes);
  }
  const now = 10_000;
  assert.ok(Math.abs((rate.perSecond(now) ?? 0) - MiB) < 0.1 * MiB, `${rate.perSecond(now)}`);
  assert.equal(rate.perSecond(now + 3100), 0, "nothing moved in the last window");

  const fresh = new TransferRate(3000);
  fresh.add(0, 0);
  fresh.add(100, MiB);
  assert.equal(fresh.perSecond(100), undefined, "too soon to say");
});

test("the status line: listing until the manifest is known, then formatted totals and an ETA on what is left to move", () => {
  let now = 0;
  const status = new PullStatus(() => now);
  assert.equal(status.line(), "listing… | 0 B | -- B/s");

  status.observe({ type: "listing", files: 3, bytes: 100 * MiB, complete: false });
  assert.match(
    status.line(),
    /^0% \| 0 B \/ 100\.0 MiB\+ \| -- B\/s \| ETA -- \| 0 \/ 3\+ files \| listing…$/,
  );

  status.observe({ type: "listing", files: 4, bytes: 100 * MiB, complete: true });
  // 50 MiB reused at once, then 5 MiB/s over the network: the 40 MiB left to move take 8 s.
  status.observe({ type: "bytes", done: 50 * MiB, moved: 0, reused: 50 * MiB });
  for (let second = 1; second <= 2; second++) {
    now = second * 1000;
    status.observe({
      type: "bytes",
      done: 50 * MiB + second * 5 * MiB,
      moved: second * 5 * MiB,
      reused: 50 * MiB,
    });
  }
  now = 2000;
  status.observe({ type: "file-done", path: "a", bytes: 50 * MiB, moved: 0, reused: 50 * MiB });
  assert.equal(
    status.line(),
    "60% | 60.0 MiB / 100.0 MiB | 5.0 MiB/s | ETA 8 s | 1 / 4 files | 50.0 MiB reused",
  );
  assert.equal(status.fraction, 0.6);

  status.observe({
    type: "retry",
    attempt: 1,
    of: 5,
    error: new TeleportError(ErrorCode.CONNECTION, "lost"),
    waitMs: 500,
  });
  assert.equal(status.line(), "listing… | 0 B | -- B/s", "the next attempt counts from the start");
});

test("durations read as people say them", () => {
  assert.equal(formatDuration(0), "0 s");
  assert.equal(formatDuration(7.2), "8 s");
  assert.equal(formatDuration(125), "2 min 05 s");
  assert.equal(formatDuration(3 * 3600 + 60 * 7), "3 h 07 min");
});
