/**
 * LocalChunks reads a chunk from a local file the index names only if the file it opens is the
 * one indexed: unchanged, regular, this user's. The checks are made on the opened descriptor, so
 * a symlink or another file swapped in under the indexed name is refused, and its row dropped.
 */
import assert from "node:assert/strict";
import { chmodSync, lstatSync, mkdirSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { hashBytes } from "../../src/chunking/hash.js";
import { type LocalChunkIndex, LocalChunks } from "../../src/mount/local-chunks.js";
import { type ChunkSource, identityOf } from "../../src/store/chunk-index.js";
import type { ChunkRef } from "../../src/wire/messages.js";
import { tempDir } from "../helpers/context.js";
import { pseudoRandomBytes } from "../helpers/tree.js";

const bytes = pseudoRandomBytes(64 * 1024, "local-chunks");
const ref: ChunkRef = { offset: 4096, size: 8192, hash: hashBytes(bytes.subarray(4096, 4096 + 8192)) };

/** An index naming `path` (as it is now) as holding `ref`, remembering what it was told to forget. */
function indexOf(path: string): { index: LocalChunkIndex; forgotten: number[] } {
  const stats = lstatSync(path, { bigint: true });
  const source: ChunkSource = {
    fileId: 7,
    path,
    offset: ref.offset,
    size: ref.size,
    identity: identityOf(stats),
    inDownload: false,
    inode: `${stats.dev}:${stats.ino}`,
  };
  const forgotten: number[] = [];
  const index = {
    locate: () => [source],
    forget: (id: number) => forgotten.push(id),
    reading: <T>(reads: () => T) => reads(),
  };
  return { index, forgotten };
}

async function setUp(t: Parameters<typeof tempDir>[0]) {
  const dir = await tempDir(t, "local-chunks");
  const mountpoint = join(dir, "mnt");
  mkdirSync(mountpoint);
  const path = join(dir, "indexed.bin");
  writeFileSync(path, bytes, { mode: 0o600 });
  return { dir, mountpoint, path };
}

test("an indexed file unchanged since is read", async (t) => {
  const { mountpoint, path } = await setUp(t);
  const { index, forgotten } = indexOf(path);
  const read = new LocalChunks(index, mountpoint).read(ref);
  assert.ok(read?.equals(bytes.subarray(ref.offset, ref.offset + ref.size)));
  assert.deepEqual(forgotten, []);
});

test("a symlink swapped in for an indexed file is refused, not followed, even to that very file", async (t) => {
  const { dir, mountpoint, path } = await setUp(t);
  const { index } = indexOf(path);
  const moved = join(dir, "moved.bin");
  renameSync(path, moved);
  symlinkSync(moved, path); // followed, it would be the indexed file itself: same identity
  assert.equal(new LocalChunks(index, mountpoint).read(ref), undefined);
});

test("another file under the indexed name, with the same bytes, is refused", async (t) => {
  const { dir, mountpoint, path } = await setUp(t);
  const { index } = indexOf(path);
  const other = join(dir, "other.bin");
  writeFileSync(other, bytes, { mode: 0o600 });
  renameSync(other, path);
  assert.equal(new LocalChunks(index, mountpoint).read(ref), undefined);
});

test("an indexed file others may write is refused", async (t) => {
  const { mountpoint, path } = await setUp(t);
  chmodSync(path, 0o666);
  const { index } = indexOf(path);
  assert.equal(new LocalChunks(index, mountpoint).read(ref), undefined);
});

test("an indexed file whose bytes no longer hash as recorded is dropped from the index", async (t) => {
  const { mountpoint, path } = await setUp(t);
  const { index, forgotten } = indexOf(path);
  const lying = { ...ref, hash: hashBytes(Buffer.from("something else")) };
  assert.equal(new LocalChunks(index, mountpoint).read(lying), undefined);
  assert.deepEqual(forgotten, [7]);
});
