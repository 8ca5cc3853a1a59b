/**
 * What `pull --watch` does to the destination itself: folders made beneath it, never through a
 * symlink, whatever path a host reports; and a host's paths checked first. (Its removals:
 * remove-beneath.test.ts.)
 */
import assert from "node:assert/strict";
import { mkdir, readdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { ensureFolders } from "../../src/client/dest-folders.js";
import { checkedPaths } from "../../src/client/watch.js";
import { ErrorCode, isTeleportError } from "../../src/errors.js";
import { tempDir } from "../helpers/context.js";

async function destWithEscapes(base: string): Promise<{ dest: string; outside: string }> {
  const dest = join(base, "dest");
  const outside = join(base, "outside");
  await mkdir(join(dest, "photos"), { recursive: true });
  await mkdir(outside);
  await writeFile(join(outside, "precious.txt"), "keep me\n");
  await writeFile(join(dest, "photos", "a.jpg"), "a\n");
  await symlink(outside, join(dest, "escape"));
  return { dest, outside };
}

test("folders for a new path replace a symlink in the way, never writing through it", async (t) => {
  const { dest, outside } = await destWithEscapes(await tempDir(t, "dest-folders"));
  ensureFolders(dest, ["escape", "new"]);
  assert.deepEqual(await readdir(outside), ["precious.txt"]);
  assert.deepEqual(await readdir(join(dest, "escape")), ["new"]);
  await writeFile(join(dest, "photos", "file"), "a file where a folder goes\n");
  ensureFolders(dest, ["photos", "file", "deeper"]);
  assert.deepEqual(await readdir(join(dest, "photos", "file")), ["deeper"]);
});

test("a host's change to a path that leaves the share is a protocol error", () => {
  assert.deepEqual(checkedPaths(["a/b.txt", ""]), ["a/b.txt", ""]);
  for (const bad of ["../x", "a/../../x", "/etc/passwd", "a//b", "a/./b"]) {
    assert.throws(
      () => checkedPaths([bad]),
      (err: unknown) => isTeleportError(err, ErrorCode.PROTOCOL),
      bad,
    );
  }
});

test("a destination that is itself a symlink the user named is followed, as a pull's is", async (t) => {
  const base = await tempDir(t, "dest-folders-link");
  await mkdir(join(base, "real"));
  await symlink(join(base, "real"), join(base, "dest"));
  ensureFolders(join(base, "dest"), ["a", "b"]);
  assert.deepEqual(await readdir(join(base, "real", "a")), ["b"]);
});
