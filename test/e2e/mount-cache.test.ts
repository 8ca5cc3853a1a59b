/**
 * A mount's chunk cache end to end, with a real host and real mounts: what crossed the network is
 * counted by the mount itself (its last line: chunks from the host, the cache, local files). A
 * remount and the same content under another name fetch nothing; content a pulled file holds is
 * read from it; the cache folder stays within --cache-size while more than that is read; a damaged
 * cache file and a mount killed mid-read never make a read return wrong bytes.
 * Skips where this machine cannot mount (not root, no /dev/fuse, no FUSE addon).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, open, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { promisify } from "node:util";
import { hashBytes } from "../../src/chunking/hash.js";
import { allocatedBytes, chunkPlaces, openRows, packFiles } from "../helpers/chunk-packs.js";
import {
  type CliEnv,
  type HostProcess,
  type RunningCli,
  runCli,
  spawnCli,
  startHost,
} from "../helpers/cli.js";
import { onCleanup, tempDir, waitFor } from "../helpers/context.js";
import { cannotMount } from "../helpers/mount.js";
import { MiB, pseudoRandomBytes } from "../helpers/tree.js";

const skip = cannotMount();

interface Hosted {
  base: string;
  share: string;
  host: HostProcess;
  env: CliEnv;
  cacheDir: string;
}

/** Hosts `files` (name -> bytes); the client side's TELEPORT_HOME and cache folder go with it. */
async function hostFiles(t: TestContext, files: Record<string, Buffer>): Promise<Hosted> {
  const base = await tempDir(t, "mount-cache");
  const share = join(base, "share");
  await mkdir(share);
  for (const [name, bytes] of Object.entries(files)) await writeFile(join(share, name), bytes);
  const host = await startHost(share, { home: join(base, "host-home") });
  onCleanup(t, () => host.stop());
  return {
    base,
    share,
    host,
    env: { TELEPORT_HOME: join(base, "client-home") },
    cacheDir: join(base, "cache"),
  };
}

let mounts = 0;

/** Mounts the share on a fresh mountpoint with the hosted cache folder; ended with the test. */
async function mount(
  t: TestContext,
  hosted: Hosted,
  args: string[] = [],
): Promise<{ mountpoint: string; running: RunningCli }> {
  const mountpoint = join(hosted.base, `mnt-${++mounts}`);
  await mkdir(mountpoint);
  const running = spawnCli(
    ["mount", hosted.host.link, mountpoint, "--cache-dir", hosted.cacheDir, ...args],
    hosted.env,
  );
  onCleanup(t, async () => {
    if (running.process.exitCode === null && running.process.signalCode === null) {
      running.process.kill("SIGTERM");
      await running.result;
    }
    await detach(mountpoint);
  });
  await waitFor(() => running.stderr().includes("mounted at") || running.process.exitCode !== null, {
    what: "teleport mount to mount",
    timeoutMs: 20_000,
  });
  assert.equal(running.process.exitCode, null, `teleport mount exited: ${running.stderr()}`);
  return { mountpoint, running };
}

/** Where the chunks a mount served came from, from its last line. */
interface Served {
  fetchedChunks: number;
  fetchedBytes: number;
  storeBytes: number;
  localBytes: number;
}

/** Unmounts (SIGTERM) and returns what the mount says it served. */
async function unmount(running: RunningCli): Promise<Served> {
  running.process.kill("SIGTERM");
  const result = await running.result;
  assert.equal(result.code, 0, result.stderr);
  const counts =
    /chunks from the host: (\d+) \((\d+) bytes\), from the cache: \d+ \((\d+) bytes\), from local files: \d+ \((\d+) bytes\)/.exec(
      result.stderr,
    );
  assert.ok(counts !== null, `no counts in: ${result.stderr}`);
  const [fetchedChunks, fetchedBytes, storeBytes, localBytes] = counts.slice(1).map(Number) as number[];
  return {
    fetchedChunks: fetchedChunks ?? -1,
    fetchedBytes: fetchedBytes ?? -1,
    storeBytes: storeBytes ?? -1,
    localBytes: localBytes ?? -1,
  };
}

/** Detaches a mount whose process is gone (killed): the kernel keeps it until told. */
async function detach(mountpoint: string): Promise<void> {
  const mounted = (await readFile("/proc/self/mounts", "utf8"))
    .split("\n")
    .some((line) => line.split(" ")[1] === mountpoint);
  if (mounted) await promisify(execFile)("umount", ["-l", mountpoint]).catch(() => {});
}

/** Every live chunk of the cache holds, where its row says, the bytes its hash names. */
async function assertCacheVerifies(cacheDir: string): Promise<void> {
  for (const place of chunkPlaces(cacheDir)) {
    const file = await open(place.path, "r");
    try {
      const bytes = Buffer.alloc(place.size);
      await file.read(bytes, 0, place.size, place.position);
      assert.ok(
        hashBytes(bytes).equals(place.hash),
        `the chunk at ${place.position} of ${place.path} verifies`,
      );
    } finally {
      await file.close();
    }
  }
}

/** Rows of chunks still being written (by any process). */
function reservations(cacheDir: string): number {
  const db = openRows(cacheDir);
  try {
    return (db.prepare("SELECT count(*) AS n FROM chunks WHERE owner IS NOT NULL").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

test("a remount and the same content under another name fetch nothing", { skip }, async (t) => {
  const data = pseudoRandomBytes(3 * MiB + 123, "mount-cache remount");
  const hosted = await hostFiles(t, { "a.bin": data, "copy-of-a.bin": data });
  const first = await mount(t, hosted);
  assert.ok((await readFile(join(first.mountpoint, "a.bin"))).equals(data));
  assert.ok((await readFile(join(first.mountpoint, "copy-of-a.bin"))).equals(data));
  const firstServed = await unmount(first.running);
  assert.equal(firstServed.fetchedBytes, data.length, "each chunk crossed the network once");

  const second = await mount(t, hosted);
  assert.ok((await readFile(join(second.mountpoint, "copy-of-a.bin"))).equals(data));
  assert.ok((await readFile(join(second.mountpoint, "a.bin"))).equals(data));
  const secondServed = await unmount(second.running);
  assert.equal(secondServed.fetchedChunks, 0, "nothing fetched after a remount");
  assert.ok(secondServed.storeBytes >= data.length, "every chunk came from the cache");
  await assertCacheVerifies(hosted.cacheDir);
  assert.equal((await stat(hosted.cacheDir)).mode & 0o777, 0o700);
});

test("content a local file already holds is read from it, not fetched", { skip }, async (t) => {
  const data = pseudoRandomBytes(2 * MiB + 5, "mount-cache local");
  const hosted = await hostFiles(t, { "data.bin": data });
  const pulled = await runCli(["pull", hosted.host.link, join(hosted.base, "pulled")], hosted.env);
  assert.equal(pulled.code, 0, pulled.stderr);
  const { mountpoint, running } = await mount(t, hosted);
  assert.ok((await readFile(join(mountpoint, "data.bin"))).equals(data));
  const served = await unmount(running);
  assert.equal(served.fetchedChunks, 0, "the pulled copy served every chunk");
  assert.ok(served.localBytes >= data.length, "every chunk came from the pulled file");
});

test("the cache folder stays within --cache-size while more than that is read", { skip }, async (t) => {
  const bound = 2 * MiB;
  const data = pseudoRandomBytes(8 * MiB, "mount-cache bound");
  const hosted = await hostFiles(t, { "big.bin": data });
  const { mountpoint, running } = await mount(t, hosted, ["--cache-size", "2M"]);
  let largest = 0;
  let reading = true;
  const sampling = (async () => {
    while (reading) {
      largest = Math.max(largest, await allocatedBytes(hosted.cacheDir));
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  const file = await open(join(mountpoint, "big.bin"), "r");
  try {
    const piece = Buffer.alloc(128 * 1024);
    for (let offset = 0; offset < data.length; offset += piece.length) {
      const { bytesRead } = await file.read(piece, 0, piece.length, offset);
      assert.ok(
        piece.subarray(0, bytesRead).equals(data.subarray(offset, offset + bytesRead)),
        `bytes at ${offset}`,
      );
    }
  } finally {
    await file.close();
    reading = false;
    await sampling;
  }
  const served = await unmount(running);
  assert.ok(served.fetchedBytes >= data.length, "more than the bound went through the cache");
  const after = await allocatedBytes(hosted.cacheDir);
  assert.ok(after > 0 && after <= bound, `cache holds ${after} bytes after the mount`);
  assert.ok(largest > 0, "the cache was sampled while it filled");
  assert.ok(largest <= bound, `cache held ${largest} bytes at most while reading`);
});

test("a damaged cache file is fetched again, never served", { skip }, async (t) => {
  const data = pseudoRandomBytes(3 * MiB, "mount-cache damaged");
  const hosted = await hostFiles(t, { "a.bin": data });
  const first = await mount(t, hosted);
  assert.ok((await readFile(join(first.mountpoint, "a.bin"))).equals(data));
  await unmount(first.running);
  const [victim] = chunkPlaces(hosted.cacheDir);
  assert.ok(victim !== undefined, "the first mount cached chunks");
  const pack = await open(victim.path, "r+");
  try {
    const byte = Buffer.alloc(1);
    const at = victim.position + (victim.size >> 1);
    await pack.read(byte, 0, 1, at);
    byte[0] = (byte[0] ?? 0) ^ 0x40;
    await pack.write(byte, 0, 1, at);
  } finally {
    await pack.close();
  }

  const second = await mount(t, hosted);
  assert.ok((await readFile(join(second.mountpoint, "a.bin"))).equals(data));
  const served = await unmount(second.running);
  assert.equal(served.fetchedBytes, victim.size, "only the damaged chunk was fetched again");
  await assertCacheVerifies(hosted.cacheDir);
});

test("a mount killed mid-read leaves a cache that a remount reads correctly", { skip }, async (t) => {
  const data = pseudoRandomBytes(24 * MiB, "mount-cache killed");
  const hosted = await hostFiles(t, { "big.bin": data });
  const first = await mount(t, hosted);
  const reading = readFile(join(first.mountpoint, "big.bin")).catch((err: NodeJS.ErrnoException) => err);
  await waitFor(
    async () => (await packFiles(hosted.cacheDir)).length > 0 && chunkPlaces(hosted.cacheDir).length >= 4,
    {
      what: "chunks in the cache",
      timeoutMs: 30_000,
    },
  );
  first.running.process.kill("SIGKILL");
  await first.running.result;
  const outcome = await reading;
  assert.ok(!Buffer.isBuffer(outcome) || outcome.equals(data), "a read that completed has the right bytes");
  await detach(first.mountpoint);

  const second = await mount(t, hosted);
  assert.ok((await readFile(join(second.mountpoint, "big.bin"))).equals(data));
  await unmount(second.running);
  await assertCacheVerifies(hosted.cacheDir);
  assert.equal(reservations(hosted.cacheDir), 0, "the killed mount's half-written chunks were removed");
});

test("two mounts sharing one cache folder read at once, each correct, the cache whole", {
  skip,
}, async (t) => {
  const data = pseudoRandomBytes(6 * MiB, "mount-cache shared");
  const hosted = await hostFiles(t, { "a.bin": data });
  const [first, second] = await Promise.all([mount(t, hosted), mount(t, hosted)]);
  const [fromFirst, fromSecond] = await Promise.all([
    readFile(join(first.mountpoint, "a.bin")),
    readFile(join(second.mountpoint, "a.bin")),
  ]);
  assert.ok(fromFirst.equals(data) && fromSecond.equals(data));
  await Promise.all([unmount(first.running), unmount(second.running)]);
  await assertCacheVerifies(hosted.cacheDir);
  assert.equal(reservations(hosted.cacheDir), 0, "no chunk left half-written");
  assert.equal(
    chunkPlaces(hosted.cacheDir).reduce((sum, place) => sum + place.size, 0),
    data.length,
    "each chunk stored once, whichever mount wrote it",
  );

  const third = await mount(t, hosted);
  assert.ok((await readFile(join(third.mountpoint, "a.bin"))).equals(data));
  assert.equal((await unmount(third.running)).fetchedChunks, 0);
});
