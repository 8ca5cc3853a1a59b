/**
 * A mount of a hostile host that sends a chunk whose bytes do not match the hash its manifest
 * committed to: the read covering it is EIO (again when retried), never wrong bytes, the chunks
 * around it still read, and the bad bytes never enter the chunk cache.
 * Skips where this machine cannot mount (not root, no /dev/fuse, no FUSE addon).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, open } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { hashBytes } from "../../src/chunking/hash.js";
import { ChunkListHash } from "../../src/chunking/manifest.js";
import type { ChunkRef } from "../../src/wire/messages.js";
import { chunkPlaces } from "../helpers/chunk-packs.js";
import { spawnCli } from "../helpers/cli.js";
import { onCleanup, tempDir, waitFor } from "../helpers/context.js";
import { fileEntry, hostile, startHostileHost } from "../helpers/hostile-host.js";
import { cannotMount, readAt } from "../helpers/mount.js";
import { pseudoRandomBytes } from "../helpers/tree.js";

const CHUNK = 64 * 1024;

/** The manifest frames of a file cut into CHUNK-sized chunks of `data`. */
function manifestOf(
  path: string,
  data: Buffer,
): { refs: ChunkRef[]; frames: ReturnType<typeof hostile.chunks>[] } {
  const refs: ChunkRef[] = [];
  const fileHash = new ChunkListHash();
  for (let offset = 0; offset < data.length; offset += CHUNK) {
    const hash = hashBytes(data.subarray(offset, offset + CHUNK));
    refs.push({ offset, size: Math.min(CHUNK, data.length - offset), hash });
    fileHash.add(hash);
  }
  const frames = [
    hostile.fileBegin(fileEntry(path, data.length)),
    hostile.chunks(refs),
    hostile.fileEnd(data.length, refs.length, fileHash.digest()),
  ];
  return { refs, frames };
}

async function readToEnd(path: string): Promise<Buffer> {
  const file = await open(path, "r");
  try {
    const pieces: Buffer[] = [];
    for (;;) {
      const { bytesRead, buffer } = await file.read(Buffer.alloc(1 << 20), 0, 1 << 20, null);
      if (bytesRead === 0) return Buffer.concat(pieces);
      pieces.push(buffer.subarray(0, bytesRead));
    }
  } finally {
    await file.close();
  }
}

test("a chunk the host corrupts reads as EIO, and never enters the cache", {
  skip: cannotMount(),
}, async (t) => {
  const base = await tempDir(t, "mount-hostile");
  const data = pseudoRandomBytes(8 * CHUNK, "mount-hostile");
  const corrupted = Buffer.from(data);
  const BAD = 5;
  corrupted[BAD * CHUNK + 100] = (corrupted[BAD * CHUNK + 100] ?? 0) ^ 1;
  const { refs, frames } = manifestOf("bad.bin", data);
  const host = await startHostileHost(join(base, "host-home"), frames, () => corrupted, {
    listing: [fileEntry("bad.bin", data.length)],
  });
  onCleanup(t, () => host.close());

  const mountpoint = join(base, "mnt");
  const cacheDir = join(base, "cache");
  await mkdir(mountpoint);
  const running = spawnCli(["mount", host.link, mountpoint, "--cache-dir", cacheDir], {
    TELEPORT_HOME: join(base, "client-home"),
  });
  onCleanup(t, async () => {
    if (running.process.exitCode === null && running.process.signalCode === null) {
      running.process.kill("SIGTERM");
      await running.result;
    }
    await promisify(execFile)("umount", ["-l", mountpoint]).catch(() => {});
  });
  await waitFor(() => running.stderr().includes("mounted at") || running.process.exitCode !== null, {
    what: "teleport mount to mount",
    timeoutMs: 20_000,
  });
  assert.equal(running.process.exitCode, null, running.stderr());

  const file = join(mountpoint, "bad.bin");
  assert.ok((await readAt(file, 0, 2 * CHUNK)).equals(data.subarray(0, 2 * CHUNK)), "good chunks read");
  await assert.rejects(readAt(file, BAD * CHUNK, 4096), { code: "EIO" });
  await assert.rejects(readAt(file, BAD * CHUNK + 50, 100), { code: "EIO" }, "again when retried");
  // Read to the end as `cat` does: the kernel returns the bytes before the bad chunk, then EIO.
  // (Node's readFile takes that short read for the end of the file: it is not used here.)
  await assert.rejects(readToEnd(file), { code: "EIO" });

  running.process.kill("SIGTERM");
  const result = await running.result;
  assert.equal(result.code, 0, result.stderr);
  const cached: string[] = [];
  for (const place of chunkPlaces(cacheDir)) {
    const pack = await open(place.path, "r");
    const bytes = Buffer.alloc(place.size);
    await pack.read(bytes, 0, place.size, place.position).finally(() => pack.close());
    assert.ok(hashBytes(bytes).equals(place.hash), "cache verifies");
    cached.push(place.hash.toString("hex"));
  }
  assert.ok(cached.length >= 2, "the good chunks were cached");
  const badRef = refs[BAD] as ChunkRef;
  const badBytes = corrupted.subarray(badRef.offset, badRef.offset + badRef.size);
  assert.ok(
    !cached.includes(badRef.hash.toString("hex")),
    "the corrupted chunk is not cached under its hash",
  );
  assert.ok(!cached.includes(hashBytes(badBytes).toString("hex")), "nor under the hash of the bad bytes");
});
