/**
 * The host's batching of watched changes as a pure unit, on model timelines: when a batch is cut,
 * what waits to settle, the cap, the overflow to a resync; and how batches become CHANGES frames
 * and the client's pulls.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { FOLDER_PULL_MIN_PATHS, pullsFor, topmost } from "../../src/client/watch.js";
import {
  CAP_MS,
  ChangeBatcher,
  FOLDER_SETTLE_MS,
  MAX_PENDING_PATHS,
  MAX_QUIET_MS,
  type PathState,
  QUIET_MS,
  SETTLE_MS,
} from "../../src/host/change-batcher.js";
import { framesOf } from "../../src/host/share-watch.js";
import { decodeMessage, encodeWithHeadroom } from "../../src/wire/codec.js";
import { changesCodec, MAX_CHANGED_PATHS } from "../../src/wire/watch-messages.js";

/** A disk where every file was last written `ageMs` ago and every folder long ago. */
const disk =
  (ageMs: number, gone: ReadonlySet<string> = new Set()) =>
  (path: string): PathState => {
    if (gone.has(path)) return { kind: "gone" };
    if (path === "" || !path.includes(".")) return { kind: "folder", ageMs: 60_000 };
    return { kind: "file", ageMs };
  };

test("a lone edit is announced once the share is quiet and the file has settled", () => {
  const batcher = new ChangeBatcher();
  batcher.add("notes.txt", "update", 0);
  assert.equal(batcher.nextCheckIn(0), QUIET_MS);
  assert.equal(batcher.take(QUIET_MS, disk(QUIET_MS)), undefined, "written too recently");
  assert.deepEqual(batcher.take(SETTLE_MS, disk(SETTLE_MS)), {
    kind: "paths",
    changed: ["notes.txt"],
    removed: [],
  });
  assert.ok(batcher.idle);
  assert.equal(batcher.nextCheckIn(SETTLE_MS), undefined);
});

test("a burst stays one batch while events keep coming, and goes whole once it is quiet", () => {
  const batcher = new ChangeBatcher();
  for (let i = 0; i < 1000; i++) batcher.add(`burst/f${i}.txt`, "create", i);
  assert.equal(batcher.take(1000, disk(1000)), undefined, "not quiet yet after many paths");
  const batch = batcher.take(999 + MAX_QUIET_MS + 1, disk(SETTLE_MS));
  assert.equal(batch?.kind, "paths");
  assert.equal(batch?.kind === "paths" && batch.changed.length, 1000);
});

test("new files wait while their folder is still changing (the watcher may hold their siblings)", () => {
  const batcher = new ChangeBatcher();
  batcher.add("burst/first.txt", "create", 0);
  const busyFolder = (path: string): PathState =>
    path === "burst" ? { kind: "folder", ageMs: FOLDER_SETTLE_MS - 1 } : disk(10_000)(path);
  assert.equal(batcher.take(1000, busyFolder), undefined);
  assert.deepEqual(batcher.take(1000, disk(10_000)), {
    kind: "paths",
    changed: ["burst/first.txt"],
    removed: [],
  });
});

test("a file still being written is held past the cap while settled ones go", () => {
  const batcher = new ChangeBatcher();
  batcher.add("done.txt", "update", 0);
  batcher.add("growing.log", "update", 0);
  for (let now = 100; now < CAP_MS; now += 100) batcher.add("growing.log", "update", now);
  const look = (path: string): PathState =>
    path === "growing.log" ? { kind: "file", ageMs: 0 } : { kind: "file", ageMs: CAP_MS };
  assert.deepEqual(batcher.take(CAP_MS, look), { kind: "paths", changed: ["done.txt"], removed: [] });
  assert.equal(batcher.idle, false);
  assert.equal(batcher.take(CAP_MS + MAX_QUIET_MS, look), undefined, "still written");
});

test("a rename is the new name changed and the old one removed; a path gone is removed", () => {
  const batcher = new ChangeBatcher();
  batcher.add("old.bin", "delete", 0);
  batcher.add("new.bin", "create", 0);
  batcher.add("vanished.txt", "update", 0);
  const batch = batcher.take(1000, disk(1000, new Set(["vanished.txt"])));
  assert.deepEqual(batch, { kind: "paths", changed: ["new.bin"], removed: ["old.bin", "vanished.txt"] });
});

test("a folder written to is not announced (its entries are); a new folder is", () => {
  const batcher = new ChangeBatcher();
  batcher.add("photos", "update", 0);
  batcher.add("albums", "create", 0);
  assert.deepEqual(batcher.take(1000, disk(1000)), { kind: "paths", changed: ["albums"], removed: [] });
  assert.ok(batcher.idle);
});

test("past MAX_PENDING_PATHS the paths are forgotten and the subscriber told to resync", () => {
  const batcher = new ChangeBatcher();
  for (let i = 0; i <= MAX_PENDING_PATHS; i++) batcher.add(`f${i}.txt`, "create", 0);
  batcher.add("later.txt", "create", 1);
  assert.deepEqual(batcher.take(1 + MAX_QUIET_MS, disk(10_000)), { kind: "resync" });
  assert.ok(batcher.idle);
});

test("a batch is cut into CHANGES frames within the path and byte limits, and each decodes", () => {
  const changed = Array.from({ length: 2500 }, (_, i) => `folder/file-${i}.txt`);
  const removed = ["gone.txt"];
  const frames = framesOf(changed, removed);
  assert.equal(frames.length, 3);
  assert.deepEqual(
    frames.flatMap((frame) => frame.changed),
    changed,
  );
  assert.deepEqual(
    frames.flatMap((frame) => frame.removed),
    removed,
  );
  for (const frame of frames) {
    assert.ok(frame.changed.length + frame.removed.length <= MAX_CHANGED_PATHS);
    const body = encodeWithHeadroom(changesCodec, { sequence: 1, flags: 0, ...frame }, 0);
    assert.ok(body.length < 64 * 1024);
    assert.deepEqual(decodeMessage(changesCodec, body).changed, frame.changed);
  }
  assert.deepEqual(framesOf([], []), [{ changed: [], removed: [] }]);
});

test("the client pulls the topmost paths, and a folder whole where many of its files changed", () => {
  assert.deepEqual(topmost(["a/b/c", "a/b", "a/bc", "d"]), ["a/b", "a/bc", "d"]);
  const many = Array.from({ length: FOLDER_PULL_MIN_PATHS }, (_, i) => `photos/${i}.jpg`);
  assert.deepEqual(pullsFor([...many, "notes.txt"], ""), ["notes.txt", "photos"]);
  assert.deepEqual(pullsFor(["photos/1.jpg", "notes.txt"], ""), ["notes.txt", "photos/1.jpg"]);
  assert.deepEqual(pullsFor(["photos"], "photos"), ["photos"]);
});
