/** ReadAhead: which reads are sequential, and how far ahead of them to fetch. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type FetchAhead, ReadAhead } from "../../src/mount/read-ahead.js";

const MiB = 1 << 20;
const WINDOW = 16 * MiB;

/** Reads `count` pieces of `size` from `start` of file 1, returning what each asked to fetch. */
function readSequentially(
  policy: ReadAhead,
  start: number,
  size: number,
  count: number,
): (FetchAhead | undefined)[] {
  return Array.from({ length: count }, (_, i) => policy.read(1, start + i * size, size, WINDOW));
}

test("a sequential reader fetches ahead from its third read, the window doubling up to the path's", () => {
  const policy = new ReadAhead();
  const asked = readSequentially(policy, 0, 128 * 1024, 200).filter((step) => step !== undefined);
  assert.deepEqual(asked[0], { from: 384 * 1024, to: 384 * 1024 + MiB });
  const sizes = asked.map((step) => step.to - step.from);
  assert.ok(
    sizes.every((bytes) => bytes <= WINDOW),
    "never more than the window ahead",
  );
  assert.ok(Math.max(...sizes) >= WINDOW / 2, "the window grew to the path's");
  for (let i = 1; i < asked.length; i++)
    assert.equal(asked[i]?.from, asked[i - 1]?.to, "each fetch continues the last: nothing asked twice");
  assert.ok(asked.length < 40, `fetched in a few large batches, not per read (${asked.length})`);
});

test("random reads never fetch ahead", () => {
  const policy = new ReadAhead();
  let seed = 7;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (let i = 0; i < 10_000; i++) {
    const offset = Math.floor(random() * 262_144) * 4096; // 1 GiB file, 4 KiB-aligned
    assert.equal(policy.read(1, offset, 4096, WINDOW), undefined, `read ${i} at ${offset}`);
  }
});

test("two readers of one file are each followed, and a reader skipping a little stays sequential", () => {
  const policy = new ReadAhead();
  const a: (FetchAhead | undefined)[] = [];
  const b: (FetchAhead | undefined)[] = [];
  for (let i = 0; i < 8; i++) {
    a.push(policy.read(1, i * 65_536, 65_536, WINDOW));
    b.push(policy.read(1, 512 * MiB + i * 65_536, 65_536, WINDOW));
  }
  assert.ok(a[2] !== undefined && b[2] !== undefined, "both interleaved readers are sequential");
  assert.ok((b[2]?.from ?? 0) >= 512 * MiB);

  const skipping = new ReadAhead();
  skipping.read(2, 0, 65_536, WINDOW);
  skipping.read(2, 65_536, 65_536, WINDOW);
  assert.notEqual(skipping.read(2, 131_072 + 8192, 65_536, WINDOW), undefined, "8 KiB skipped");
  const jumping = new ReadAhead();
  jumping.read(3, 0, 65_536, WINDOW);
  jumping.read(3, 65_536, 65_536, WINDOW);
  assert.equal(jumping.read(3, 64 * MiB, 65_536, WINDOW), undefined, "a jump is not sequential");
});

test("files followed are bounded, the least recently read forgotten", () => {
  const policy = new ReadAhead({ initialWindowBytes: MiB, skipBytes: 0, cursorsPerFile: 2, files: 2 });
  policy.read(1, 0, 4096, WINDOW);
  policy.read(1, 4096, 4096, WINDOW);
  policy.read(2, 0, 4096, WINDOW);
  policy.read(3, 0, 4096, WINDOW); // file 1 forgotten
  policy.read(3, 4096, 4096, WINDOW);
  assert.equal(policy.read(1, 8192, 4096, WINDOW), undefined, "file 1 starts over");
  assert.notEqual(policy.read(3, 8192, 4096, WINDOW), undefined, "file 3 is followed");
});
