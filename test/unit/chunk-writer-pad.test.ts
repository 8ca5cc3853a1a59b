import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { GatheredWrites } from "../../src/client/pool/chunk-writer.js";
import { packBatch, unpackBatch } from "../../src/client/pool/stream-protocol.js";
import { BufferPool } from "../../src/engine/buffer-pool.js";
import type { ChunkWrite } from "../../src/receive/chunk-write.js";

const BLOCK = 4096;

/** A file of `size` 0xff bytes, opened for writing; removed with the test. */
function scratch(t: { after(fn: () => void): void }, size: number): { path: string; fd: number } {
  const dir = mkdtempSync(join(tmpdir(), "teleport-pad-"));
  const path = join(dir, "pack");
  writeFileSync(path, Buffer.alloc(size, 0xff));
  const fd = openSync(path, "r+");
  t.after(() => {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, fd };
}

function chunk(pool: BufferPool, size: number, fill: number): Buffer {
  return pool.acquire(size).fill(fill);
}

function write(fd: number, offset: number, size: number, at?: number): ChunkWrite {
  return { hash: Buffer.alloc(32), size, path: "f", offset, fd, ...(at === undefined ? {} : { at }) };
}

test("placed chunks a block apart are written with zeros in the gap, counted without it", (t) => {
  const { path, fd } = scratch(t, 3 * BLOCK);
  const pool = new BufferPool();
  const gathered = new GatheredWrites(pool);
  gathered.add(write(fd, 0, 1000, 0), chunk(pool, 1000, 1));
  gathered.add(write(fd, 1000, 5000, BLOCK), chunk(pool, 5000, 2));
  gathered.flush();
  const bytes = readFileSync(path);
  assert.ok(bytes.subarray(0, 1000).every((b) => b === 1));
  assert.ok(
    bytes.subarray(1000, BLOCK).every((b) => b === 0),
    "the first chunk's block tail is zeros",
  );
  assert.ok(bytes.subarray(BLOCK, BLOCK + 5000).every((b) => b === 2));
  assert.ok(
    bytes.subarray(BLOCK + 5000).every((b) => b === 0xff),
    "nothing past the last chunk",
  );
  assert.equal(gathered.written, 6000);
  assert.equal(pool.inUseBytes, 0, "every chunk buffer went back");
});

test("chunks at their offsets (a pull) and placed chunks off a block boundary are never padded", (t) => {
  const { path, fd } = scratch(t, 3 * BLOCK);
  const pool = new BufferPool();
  const gathered = new GatheredWrites(pool);
  gathered.add(write(fd, 0, 1000), chunk(pool, 1000, 1));
  gathered.add(write(fd, BLOCK, 1000), chunk(pool, 1000, 2));
  gathered.add(write(fd, 0, 100, 2 * BLOCK), chunk(pool, 100, 3));
  gathered.add(write(fd, 100, 100, 2 * BLOCK + 200), chunk(pool, 100, 4));
  gathered.flush();
  const bytes = readFileSync(path);
  assert.ok(
    bytes.subarray(1000, BLOCK).every((b) => b === 0xff),
    "a pull's gap keeps its bytes",
  );
  assert.ok(bytes.subarray(2 * BLOCK + 100, 2 * BLOCK + 200).every((b) => b === 0xff));
  assert.ok(bytes.subarray(2 * BLOCK + 200, 2 * BLOCK + 300).every((b) => b === 4));
  assert.equal(gathered.written, 2200);
});

test("a pull's chunks cross to the stream threads without a place, so they are never padded", () => {
  const pull = [write(3, 0, 1000), write(3, BLOCK, 1000)];
  const placed = write(4, 0, 1000, 8 * BLOCK);
  const [first, second, third] = unpackBatch(packBatch([...pull, placed]));
  assert.equal(first?.at, undefined);
  assert.equal(second?.at, undefined);
  assert.equal(third?.at, 8 * BLOCK);
});
