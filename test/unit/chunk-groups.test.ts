/** How the host cuts a GET_CHUNKS into runs (one readv each) and groups (one write each). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  CHUNK_FRAME_PREFIX,
  contiguousRuns,
  groupFrameBytes,
  piecesOf,
  READ_RUN_BYTES,
  runEnd,
  writeGroups,
} from "../../src/serve/chunk-groups.js";
import type { ChunkRequest } from "../../src/wire/messages.js";

const KiB = 1024;

function chunk(path: string, offset: number, size: number): ChunkRequest {
  return { hash: Buffer.alloc(32), size, path, offset };
}

/** `count` chunks of `size` back to back in `path` from `offset`. */
function backToBack(path: string, count: number, size: number, offset = 0): ChunkRequest[] {
  return Array.from({ length: count }, (_, i) => chunk(path, offset + i * size, size));
}

const describeRun = (run: readonly ChunkRequest[]) => run.map((c) => `${c.path}@${c.offset}`).join(",");

describe("chunk runs", () => {
  it("join chunks back to back in one file, and only those", () => {
    const runs = contiguousRuns([
      chunk("a", 0, 10),
      chunk("a", 10, 10),
      chunk("b", 20, 10), // another file
      chunk("b", 40, 10), // a gap
      chunk("b", 50, 5),
      chunk("a", 20, 10), // back in a, after b
    ]);
    assert.deepEqual(runs.map(describeRun), ["a@0,a@10", "b@20", "b@40,b@50", "a@20"]);
    assert.deepEqual(runs.map(runEnd), [20, 30, 55, 30]);
  });

  it("stop at READ_RUN_BYTES, though a chunk larger than that is a run of its own", () => {
    const size = 256 * KiB;
    const runs = contiguousRuns(backToBack("big", 20, size));
    assert.deepEqual(
      runs.map((run) => run.length),
      [8, 8, 4],
    );
    const huge = contiguousRuns([chunk("x", 0, 4 * 1024 * KiB), chunk("x", 4 * 1024 * KiB, 10)]);
    assert.deepEqual(
      huge.map((run) => run.length),
      [1, 1],
    );
  });

  it("of no chunks are none", () => {
    assert.deepEqual(contiguousRuns([]), []);
    assert.deepEqual(writeGroups([]), []);
  });
});

describe("chunk groups", () => {
  it("gather runs up to READ_RUN_BYTES of frames, in order", () => {
    const runs = contiguousRuns(Array.from({ length: 300 }, (_, i) => chunk(`small-${i}`, 0, 10 * KiB)));
    const groups = writeGroups(runs);
    for (const group of groups) assert.ok(groupFrameBytes(group) <= READ_RUN_BYTES);
    const perGroup = Math.floor(READ_RUN_BYTES / (CHUNK_FRAME_PREFIX + 10 * KiB));
    assert.deepEqual(
      groups.map((group) => group.length),
      [perGroup, 300 - perGroup],
    );
    assert.deepEqual(groups.flat(), runs);
  });

  it("are cut into pieces of at most so many runs (files open at once)", () => {
    const group = writeGroups(contiguousRuns(Array.from({ length: 70 }, (_, i) => chunk(`f${i}`, 0, 1))));
    assert.equal(group.length, 1);
    const [only] = group;
    assert.ok(only !== undefined);
    assert.deepEqual(
      piecesOf(only, 32).map((piece) => piece.length),
      [32, 32, 6],
    );
    assert.deepEqual(piecesOf(only, 32).flat(), only);
  });
});
