/**
 * What a pull tells its `onProgress`: the listing as it grows, each file as it completes, the
 * bytes at most every PROGRESS_INTERVAL_MS, and `done` last with the totals.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { PROGRESS_INTERVAL_MS } from "../../src/client/pull/progress-reporter.js";
import type { PullEvent } from "../../src/client/pull.js";
import { pullLink } from "../../src/client/pull-link.js";
import { hostInProcess, makeShare } from "../helpers/share.js";
import { MiB, pseudoRandomBytes } from "../helpers/tree.js";

test("a pull's events: listing, a file-done per file, bytes at most every 100 ms, done last with totals", async (t) => {
  const files: Record<string, Buffer> = { "big.bin": pseudoRandomBytes(24 * MiB, "events-big") };
  for (let i = 0; i < 5; i++) files[`small/${i}.txt`] = pseudoRandomBytes(1000 + i, `events-${i}`);
  const total = Object.values(files).reduce((sum, content) => sum + content.length, 0);
  const { base, share } = await makeShare(t, "events", files);
  const host = await hostInProcess(t, { base, share });

  const events: { at: number; event: PullEvent }[] = [];
  const summary = await pullLink(host.url, {
    dest: join(base, "dest"),
    streams: 2,
    onProgress: (event) => events.push({ at: performance.now(), event }),
  });

  assert.equal(events[0]?.event.type, "listing");
  const done = events.at(-1)?.event;
  assert.equal(done?.type, "done");
  assert.equal(events.filter(({ event }) => event.type === "done").length, 1);
  if (done?.type === "done") {
    assert.deepEqual(done.summary, summary);
    assert.equal(done.totals.attempts, 1);
    assert.equal(done.totals.bytesMoved, total);
    assert.equal(done.totals.bytesReused, 0);
  }

  const filesDone = events.flatMap(({ event }) => (event.type === "file-done" ? [event] : []));
  assert.deepEqual(
    filesDone
      .map(({ path, bytes, moved, reused }) => ({ path, bytes, moved, reused }))
      .sort((a, b) => (a.path < b.path ? -1 : 1)),
    Object.entries(files)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([path, content]) => ({ path, bytes: content.length, moved: content.length, reused: 0 })),
  );

  const listings = events.flatMap(({ event }) => (event.type === "listing" ? [event] : []));
  assert.deepEqual(listings.at(-1), { type: "listing", files: 6, bytes: total, complete: true });
  assert.ok(listings.slice(0, -1).every((listing) => !listing.complete));

  const bytes = events.flatMap(({ at, event }) => (event.type === "bytes" ? [{ at, ...event }] : []));
  assert.deepEqual(bytes.at(-1), { ...bytes.at(-1), done: total, moved: total, reused: 0 });
  for (let i = 1; i < bytes.length; i++) {
    const [previous, current] = [bytes[i - 1], bytes[i]];
    assert.ok(previous && current && current.moved >= previous.moved, "counts only grow");
  }
  // Sent when due, or when the listing ends, or at the end: never per chunk.
  const seconds = ((events.at(-1)?.at ?? 0) - (events[0]?.at ?? 0)) / 1000;
  assert.ok(bytes.length <= (seconds * 1000) / PROGRESS_INTERVAL_MS + 3, `${bytes.length} in ${seconds} s`);
});
