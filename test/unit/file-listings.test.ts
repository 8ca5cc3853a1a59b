/**
 * FileListings: chunk lists by inode from each file's manifest, the least recently read dropped
 * past the memory bound and asked for again; a hostile list fails its file's reads.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ChunkListHash } from "../../src/chunking/manifest.js";
import type { TeleportClient } from "../../src/client/client.js";
import { FileListings } from "../../src/mount/file-listings.js";
import type { Inode } from "../../src/mount/inode-table.js";
import { MountHost } from "../../src/mount/mount-host.js";
import type { ManifestEvent } from "../../src/receive/manifest-event.js";
import { type ChunkRef, EntryKind } from "../../src/wire/messages.js";

const CHUNK = 64 * 1024;

function fileNode(ino: number, size: number): Inode {
  const entry = { kind: EntryKind.FILE, path: `f${ino}`, size, mode: 0o644, mtimeMs: 1000, linkTarget: "" };
  return { ino, entry, parentIno: 1, children: undefined };
}

function chunksOf(size: number, chunk = CHUNK): ChunkRef[] {
  const refs: ChunkRef[] = [];
  for (let offset = 0; offset < size; offset += chunk)
    refs.push({ offset, size: Math.min(chunk, size - offset), hash: Buffer.alloc(32, offset % 251) });
  return refs;
}

/** A host whose manifests describe each file in `chunk`-byte chunks, counting what it is asked. */
function fakeHost(chunk = CHUNK): { host: MountHost; asked: string[] } {
  const asked: string[] = [];
  const client = {
    async *manifest(path: string): AsyncGenerator<ManifestEvent> {
      asked.push(path);
      const size = Number(path.slice(1)) * 1024 * 1024; // f<N>: N MiB
      const entry = { kind: EntryKind.FILE, path, size, mode: 0o644, mtimeMs: 1000, linkTarget: "" };
      yield { kind: "file-begin", entry };
      const chunks = chunksOf(size, chunk);
      yield { kind: "chunks", chunks };
      const listHash = new ChunkListHash();
      for (const ref of chunks) listHash.add(ref.hash);
      yield { kind: "file-end", digest: { size, chunkCount: chunks.length, fileHash: listHash.digest() } };
    },
  };
  return { host: new MountHost(client as unknown as TeleportClient), asked };
}

const signal = () => AbortSignal.timeout(10_000);

test("lists are kept by inode and the least recently read are dropped past the bound", async () => {
  const { host, asked } = fakeHost();
  // 16-18 MiB in 64 KiB chunks: ~256 chunks, ~11-12 KiB a list; room for two.
  const listings = new FileListings(host, 24 * 1024);
  for (const ino of [16, 17, 16]) await listings.get(fileNode(ino, ino << 20)).until(ino << 20, signal());
  assert.deepEqual(asked, ["f16", "f17"], "a kept list is not asked for again");
  await listings.get(fileNode(18, 18 << 20)).until(18 << 20, signal());
  assert.ok(listings.bytes <= 24 * 1024, `within the bound (${listings.bytes})`);
  assert.equal(listings.has(fileNode(17, 17 << 20)), false, "the least recently read was dropped");
  assert.equal(listings.has(fileNode(16, 16 << 20)), true);
  const again = listings.get(fileNode(17, 17 << 20));
  await again.until(17 << 20, signal());
  assert.equal(again.covering(0, 1).length, 1);
  assert.deepEqual(asked, ["f16", "f17", "f18", "f17"], "a dropped list is asked for again when read");
});

test("a host listing a file in more chunks than its size allows fails the file's reads", async () => {
  const { host } = fakeHost(1024); // 1 KiB chunks: below the chunker's minimum, thousands of them
  const listings = new FileListings(host);
  await assert.rejects(
    listings.get(fileNode(4, 4 << 20)).until(4 << 20, signal()),
    /more chunks than a file/,
  );
});
