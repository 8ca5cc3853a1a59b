/**
 * `--bwlimit`'s parts on model inputs: the rate parser's units, and the shared schedule (the
 * clock passed in) holding several takers together to the rate.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseByteRate } from "../../src/cli/byte-rate.js";
import { ReceiveLimit, receiveLimitSpec } from "../../src/client/pool/receive-limit.js";

test("rates: k, M, G and KiB, MiB, GiB count in 1024s, kB, MB, GB in 1000s; a bare number or bits are refused", () => {
  assert.equal(parseByteRate("500k"), 500 * 1024);
  assert.equal(parseByteRate("10M"), 10 * 1024 ** 2);
  assert.equal(parseByteRate("1.5MiB"), 1.5 * 1024 ** 2);
  assert.equal(parseByteRate("2MB/s"), 2_000_000);
  assert.equal(parseByteRate("1G"), 1024 ** 3);
  assert.equal(parseByteRate("4096B"), 4096);
  for (const refused of ["10", "10mb", "1Mib", "0k", "-1M", "M", "1e3k", ""])
    assert.equal(parseByteRate(refused), undefined, refused);
});

test("the shared schedule holds takers on different limits of one spec to the rate together", () => {
  const spec = receiveLimitSpec(1_000_000);
  const [a, b] = [new ReceiveLimit(spec), new ReceiveLimit(spec)];
  let now = 1_000_000_000_000n;
  let waitedMs = 0;
  // Two streams each deliver 64 KB as soon as they are let: 4.096 MB at 1 MB/s, less the first burst.
  for (let i = 0; i < 32; i++) {
    for (const limit of [a, b]) {
      const waitMs = limit.take(64_000, now);
      waitedMs += waitMs;
      now += BigInt(Math.round(waitMs * 1e6));
    }
  }
  const seconds = waitedMs / 1000;
  assert.ok(seconds > 4.096 - 0.06 && seconds <= 4.096, `4.096 MB at 1 MB/s took ${seconds} s`);
});

test("an idle limit lets a short burst through at once, and no more", () => {
  const limit = new ReceiveLimit(receiveLimitSpec(1_000_000));
  const now = 5_000_000_000n;
  assert.equal(limit.take(40_000, now), 0, "40 ms worth fits the 50 ms burst");
  assert.ok(limit.take(40_000, now) > 25, "the next 40 ms worth waits for the schedule");
});
