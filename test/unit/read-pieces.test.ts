/**
 * A mount's read answered as pieces (views of its chunks, zeros for holes): the pieces, back to
 * back, are exactly the file's bytes of the range, wherever the range starts and ends.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { pieces } from "../../src/mount/remote-files.js";
import type { ChunkRef } from "../../src/wire/messages.js";

/** A 100-byte file: chunks at [10, 30) and [30, 50), a hole, a chunk at [70, 90), a hole to the end. */
const FILE = Buffer.alloc(100);
const REFS: ChunkRef[] = [
  { offset: 10, size: 20, hash: Buffer.alloc(32, 1) },
  { offset: 30, size: 20, hash: Buffer.alloc(32, 2) },
  { offset: 70, size: 20, hash: Buffer.alloc(32, 3) },
];
for (const ref of REFS)
  for (let at = ref.offset; at < ref.offset + ref.size; at++) FILE[at] = (at * 7 + 1) & 0xff;
const CHUNKS = REFS.map((ref) => Buffer.from(FILE.subarray(ref.offset, ref.offset + ref.size)));

test("every range of a file with holes comes back as its bytes", () => {
  for (let offset = 0; offset < 100; offset++)
    for (let length = 1; offset + length <= 100; length++) {
      const covering = REFS.map((ref, i) => ({ ref, chunk: CHUNKS[i] })).filter(
        ({ ref }) => ref.offset < offset + length && ref.offset + ref.size > offset,
      );
      const got = pieces(
        covering.map(({ ref }) => ref),
        covering.map(({ chunk }) => chunk ?? Buffer.alloc(0)),
        offset,
        length,
      );
      assert.ok(
        got.every((piece) => piece instanceof Uint8Array),
        "chunks in memory give views",
      );
      assert.ok(
        Buffer.concat(got as Uint8Array[]).equals(FILE.subarray(offset, offset + length)),
        `range [${offset}, ${offset + length})`,
      );
    }
});
