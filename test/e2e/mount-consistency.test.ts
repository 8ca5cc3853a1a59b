/**
 * A mount follows its host: files changed, added and removed on the host show in the mount
 * through the host's change notifications (WATCH) within seconds, or after the listing TTL
 * without them (--no-watch), and a changed file never reads as its old bytes once it has read as
 * its new ones, nor as a mix of both. Skips where this machine cannot mount.
 */
import assert from "node:assert/strict";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { waitFor } from "../helpers/context.js";
import { cannotMount, hostAndMount } from "../helpers/mount.js";
import { FIXTURE, pseudoRandomBytes } from "../helpers/tree.js";

const skip = cannotMount();

/** How long a change may take to show: the host batches its events (up to ~1.5 s) first. */
const VISIBLE_WITHIN_MS = 10_000;

/** The file's bytes through the mount, or its error code (EIO while it changes is allowed). */
async function readThrough(path: string): Promise<Buffer | string> {
  try {
    return await readFile(path);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

/**
 * Reads `path` until it reads as `next`, checking every read on the way is `previous`, `next` or
 * EIO (never a mix), and that once `next` was read, reads stay `next`.
 */
async function untilChanged(path: string, previous: Buffer, next: Buffer): Promise<number> {
  const started = performance.now();
  await waitFor(
    async () => {
      const got = await readThrough(path);
      if (typeof got === "string") {
        assert.equal(got, "EIO", `reading ${path} while it changes`);
        return false;
      }
      if (got.equals(next)) return true;
      assert.ok(got.equals(previous), `${path} read as neither its old nor its new bytes`);
      return false;
    },
    { what: `${path} to read as its new bytes`, timeoutMs: VISIBLE_WITHIN_MS, intervalMs: 50 },
  );
  const seconds = (performance.now() - started) / 1000;
  for (let i = 0; i < 5; i++)
    assert.ok((await readFile(path)).equals(next), "stale bytes after the new ones");
  return seconds;
}

test("files changed, added and removed on the host show in the mount through WATCH", { skip }, async (t) => {
  const { share, mountpoint } = await hostAndMount(t);
  // Same size, new bytes: only the host's word tells the kernel its cached pages are old.
  const path = FIXTURE.oneMiB;
  const before = await readFile(join(mountpoint, path));
  assert.ok(before.equals(await readFile(join(share, path))));
  const after = pseudoRandomBytes(before.length, "changed on the host");
  await writeFile(join(share, path), after);
  await untilChanged(join(mountpoint, path), before, after);

  // A bigger file over a cached small one.
  const small = FIXTURE.spaces;
  const smallBefore = await readFile(join(mountpoint, small));
  const grown = pseudoRandomBytes(3 * 1024 * 1024 + 11, "grown");
  await writeFile(join(share, small), grown);
  await untilChanged(join(mountpoint, small), smallBefore, grown);

  const added = pseudoRandomBytes(70_000, "added");
  await writeFile(join(share, "added.bin"), added);
  await waitFor(async () => (await readdir(mountpoint)).includes("added.bin"), {
    what: "a new file to be listed",
    timeoutMs: VISIBLE_WITHIN_MS,
    intervalMs: 50,
  });
  assert.ok((await readFile(join(mountpoint, "added.bin"))).equals(added));

  // A folder made with a tree in it: listed when first looked into.
  await mkdir(join(share, "made/deeper"), { recursive: true });
  await writeFile(join(share, "made/deeper/leaf.txt"), "leaf\n");
  await waitFor(
    async () => (await readThrough(join(mountpoint, "made/deeper/leaf.txt"))).toString() === "leaf\n",
    {
      what: "a file in a new folder to show",
      timeoutMs: VISIBLE_WITHIN_MS,
      intervalMs: 50,
    },
  );

  await rm(join(share, FIXTURE.manyChunks));
  await waitFor(async () => (await readThrough(join(mountpoint, FIXTURE.manyChunks))) === "ENOENT", {
    what: "a removed file to be gone",
    timeoutMs: VISIBLE_WITHIN_MS,
    intervalMs: 50,
  });
});

test("without WATCH (--no-watch), changes show once the listing TTL has passed", { skip }, async (t) => {
  const { share, mountpoint } = await hostAndMount(t, ["--no-watch", "--ttl", "1"]);
  const path = FIXTURE.oneMiB;
  const before = await readFile(join(mountpoint, path));
  const after = pseudoRandomBytes(before.length, "changed, not told");
  await writeFile(join(share, path), after);
  const seconds = await untilChanged(join(mountpoint, path), before, after);
  assert.ok(seconds < 5, `changed bytes showed after ${seconds} s with a 1 s TTL`);

  await writeFile(join(share, "later.txt"), "later\n");
  await waitFor(async () => (await readThrough(join(mountpoint, "later.txt"))).toString() === "later\n", {
    what: "a new file to show after the TTL",
    timeoutMs: VISIBLE_WITHIN_MS,
    intervalMs: 100,
  });
});
