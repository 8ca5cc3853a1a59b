/** The host's file-state cache for files a manifest reads whole: lookups, and records batched. */
import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { defaultChunker } from "../../src/chunking/chunker.js";
import { chunkBytes } from "../../src/chunking/manifest.js";
import { FileStates, isListed } from "../../src/serve/file-states.js";
import { ChunkIndex } from "../../src/store/chunk-index.js";
import { seededRandom } from "../helpers/seed.js";

const chunker = defaultChunker();

/** A folder with `count` files of 100 KB, and the host's index in it. */
function setUp(t: TestContext, count: number) {
  const dir = mkdtempSync(join(tmpdir(), "teleport-file-states-"));
  const index = ChunkIndex.open(join(dir, "home"));
  t.after(() => {
    index.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const random = seededRandom(t);
  const paths = Array.from({ length: count }, (_, i) => {
    const path = join(dir, `f${i}`);
    writeFileSync(path, random.bytes(100_000));
    return path;
  });
  return { dir, index, paths };
}

/** Looks `path` up as a manifest does, hashing and recording it when the index does not know it. */
function list(states: FileStates, path: string): { listedFromIndex: boolean } {
  const fd = openSync(path, "r");
  try {
    const data = readFileSync(path);
    const found = states.lookup(fd, path, data.length);
    assert.ok(found !== undefined);
    if (isListed(found)) {
      assert.deepEqual(found, chunkBytes(data, chunker), "the index lists what hashing the file gives");
      return { listedFromIndex: true };
    }
    states.record(fd, found, chunkBytes(data, chunker));
    return { listedFromIndex: false };
  } finally {
    closeSync(fd);
  }
}

test("FileStates lists a file it recorded from the index, once the batch is written", (t) => {
  const { index, paths } = setUp(t, 3);
  const states = new FileStates(index, chunker.id);
  for (const path of paths) assert.equal(list(states, path).listedFromIndex, false);
  const other = new FileStates(index, chunker.id);
  assert.equal(list(other, paths[0] as string).listedFromIndex, false, "not written before the flush");
  states.flush();
  for (const path of paths) assert.equal(list(states, path).listedFromIndex, true);
});

test("FileStates writes its records in batches without being asked", (t) => {
  const { index, paths } = setUp(t, 300);
  const states = new FileStates(index, chunker.id);
  for (const path of paths) list(states, path);
  const reader = new FileStates(index, chunker.id);
  assert.equal(list(reader, paths[0] as string).listedFromIndex, true, "the first batch is written");
  assert.equal(list(reader, paths[299] as string).listedFromIndex, false, "the last is not, yet");
});

test("FileStates does not record a file that changed after it was looked up", (t) => {
  const { index, paths } = setUp(t, 1);
  const path = paths[0] as string;
  const states = new FileStates(index, chunker.id);
  const fd = openSync(path, "r");
  try {
    const before = readFileSync(path);
    const found = states.lookup(fd, path, before.length);
    assert.ok(found !== undefined && !isListed(found));
    writeFileSync(path, Buffer.alloc(before.length, 7)); // same size, new bytes, new mtime
    utimesSync(path, new Date(), new Date(Date.now() + 5000));
    states.record(fd, found, chunkBytes(before, chunker));
  } finally {
    closeSync(fd);
  }
  states.flush();
  assert.equal(list(states, path).listedFromIndex, false, "what was hashed is not what the file holds now");
  assert.equal(list(states, path).listedFromIndex, false);
  states.flush();
  assert.equal(list(states, path).listedFromIndex, true);
});

test("FileStates looks up nothing for a file whose size is not the one listed", (t) => {
  const { index, paths } = setUp(t, 1);
  const states = new FileStates(index, chunker.id);
  const fd = openSync(paths[0] as string, "r");
  t.after(() => closeSync(fd));
  assert.equal(states.lookup(fd, paths[0] as string, 99_999), undefined);
});
