/**
 * The pack read thread on its own: a run is read with one pread and each chunk judged against
 * its hash (a changed byte fails that chunk only, a run past the file's end fails all); once
 * closed, it reads nothing and says so, for its caller to read on the main thread.
 */
import assert from "node:assert/strict";
import { closeSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { hashBytes } from "../../src/chunking/hash.js";
import { PackReadThread } from "../../src/mount/pack-read-thread.js";
import { tempDir } from "../helpers/context.js";
import { pseudoRandomBytes } from "../helpers/tree.js";

test("a run's chunks are verified one by one on the read thread, then it closes", async (t) => {
  const folder = await tempDir(t, "pack-read-thread");
  const first = pseudoRandomBytes(8192, "first");
  const second = pseudoRandomBytes(4096, "second");
  const file = join(folder, "1.pack");
  writeFileSync(file, Buffer.concat([Buffer.alloc(4096), first, second]));
  const fd = openSync(file, "r");
  const thread = new PackReadThread();
  t.after(() => {
    thread.close();
    closeSync(fd);
  });
  const chunks = [
    { offset: 0, size: first.length, hash: hashBytes(first) },
    { offset: first.length, size: second.length, hash: hashBytes(Buffer.from("not the second")) },
  ];
  const reply = await thread.read(fd, 4096, first.length + second.length, chunks, true);
  assert.ok(reply !== undefined, "the thread read the run");
  assert.deepEqual([...reply.verified], [1, 0], "the changed chunk alone fails");
  assert.ok(reply.run !== undefined && Buffer.from(reply.run, 0, first.length).equals(first));
  const verdicts = await thread.read(fd, 4096, first.length + second.length, chunks, false);
  assert.deepEqual([...(verdicts?.verified ?? [])], [1, 0], "the same verdicts without the bytes");
  assert.equal(verdicts?.run, undefined, "the bytes stay in the thread");
  const beyond = await thread.read(fd, 8192, first.length + second.length, chunks, true);
  assert.deepEqual([...(beyond?.verified ?? [])], [0, 0], "a short read fails every chunk");
  thread.close();
  assert.equal(await thread.read(fd, 4096, first.length, chunks.slice(0, 1), true), undefined);
});
