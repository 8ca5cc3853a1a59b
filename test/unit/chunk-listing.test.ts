/** ChunkListing: a read waits until the streaming chunk list describes its range, or fails with it. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ChunkListing, maxChunkCount } from "../../src/mount/chunk-listing.js";
import type { ChunkRef } from "../../src/wire/messages.js";

function chunk(offset: number, size: number): ChunkRef {
  return { offset, size, hash: Buffer.alloc(32, offset % 251) };
}

/** A file large enough for the chunks and holes these tests list (the count is bounded by size). */
const ROOMY = 64 << 20;

test("a read waits until the list reaches its end, holes before a chunk included", async () => {
  const listing = new ChunkListing(ROOMY);
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
  assert.equal(listing.count, 2);
});

test("FILE_END describes the rest (a trailing hole); a failure reaches every waiter", async () => {
  const signal = new AbortController().signal;
  const complete = new ChunkListing(1000);
  const tail = complete.until(1000, signal);
  complete.add([chunk(0, 10)]);
  complete.finish();
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

test("covering finds the chunks overlapping a range, across holes, with their hashes", () => {
  const listing = new ChunkListing(ROOMY);
  listing.add([chunk(0, 100), chunk(100, 100)]);
  listing.add([chunk(500, 200), chunk(700, 300)]);
  assert.deepEqual(
    listing.covering(150, 400).map((ref) => [ref.offset, ref.size]),
    [
      [100, 100],
      [500, 200],
    ],
  );
  assert.deepEqual(listing.covering(200, 300), [], "a range inside the hole");
  const [last] = listing.covering(999, 1);
  assert.equal(last?.offset, 700);
  assert.deepEqual(last?.hash, Buffer.alloc(32, 700 % 251));
});

test("a host listing more chunks than a file of its size can have is refused", () => {
  const size = 1 << 20;
  const listing = new ChunkListing(size);
  const honest = Math.floor(size / (16 * 1024));
  listing.add(Array.from({ length: honest }, (_, i) => chunk(i * 16 * 1024, 16 * 1024)));
  assert.equal(listing.count, honest);
  const tiny = new ChunkListing(size);
  const hostile = Array.from({ length: maxChunkCount(size) + 1 }, (_, i) => chunk(i, 1));
  assert.throws(() => tiny.add(hostile), /more chunks than a file of 1048576 bytes can have/);
  assert.ok(tiny.memoryBytes < 64 * 1024, "nothing kept of the refused list");
  assert.equal(maxChunkCount(1 << 40) < 2 ** 27, true, "1 TiB: at most ~64 million chunks, never unbounded");
});
