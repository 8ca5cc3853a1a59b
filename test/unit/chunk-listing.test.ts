/** ChunkListing: a read waits until the streaming chunk list describes its range, or fails with it. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ChunkListing } from "../../src/mount/chunk-listing.js";
import type { ChunkRef } from "../../src/wire/messages.js";

function chunk(offset: number, size: number): ChunkRef {
  return { offset, size, hash: Buffer.alloc(32, offset % 251) };
}

test("a read waits until the list reaches its end, holes before a chunk included", async () => {
  const listing = new ChunkListing(1000);
  const signal = new AbortController().signal;
  let ready = false;
  const waiting = listing.until(600, signal).then(() => {
    ready = true;
  });
  listing.add([chunk(0, 100)]);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(ready, false, "100 bytes described: not yet");
  listing.add([chunk(500, 200)]); // 100-500 is a hole, described once a chunk follows it
  await waiting;
  assert.equal(listing.chunks.length, 2);
});

test("FILE_END describes the rest (a trailing hole); a failure reaches every waiter", async () => {
  const signal = new AbortController().signal;
  const complete = new ChunkListing(1000);
  const tail = complete.until(1000, signal);
  complete.add([chunk(0, 10)]);
  complete.complete();
  await tail;

  const failing = new ChunkListing(1000);
  const waiters = [failing.until(10, signal), failing.until(900, signal)];
  failing.fail(new Error("host gone"));
  for (const waiter of waiters) await assert.rejects(waiter, /host gone/);
  assert.equal(failing.failed, true);
});

test("an aborted read stops waiting with its signal's reason", async () => {
  const listing = new ChunkListing(1000);
  const controller = new AbortController();
  const waiting = listing.until(500, controller.signal);
  controller.abort(new Error("deadline"));
  await assert.rejects(waiting, /deadline/);
});
