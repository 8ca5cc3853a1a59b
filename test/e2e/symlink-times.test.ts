/**
 * Symlinks keep their own mtime through a pull, as rsync -a keeps it (issue 21: 45 symlinks of a
 * real tree came out with the time of the pull), and a re-pull leaves an unchanged symlink as it
 * was. Through the real CLI; npm test runs this file with the addon (utimensat relative to the
 * folder's descriptor) and in the portable mode (lutimes through /proc/self/fd).
 */
import assert from "node:assert/strict";
import { lstat, lutimes, mkdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { hostWithCli, makeShare } from "../helpers/share.js";

/** Symlinks of the share by path, and their targets: to a file, a folder, up, and dangling. */
const SYMLINKS: Record<string, string> = {
  "to-file": "one.txt",
  "to-folder": "sub",
  "sub/up": "../one.txt",
  "sub/deeper/to-sibling": "../two.txt",
  dangling: "not-there-yet",
};

/** A different old time for each symlink, with a millisecond part: 2001-09-09 plus i days. */
function oldTime(i: number): number {
  return 1_000_000_000_000 + i * 86_400_000 + 123;
}

async function shareWithOldSymlinks(t: TestContext) {
  const { base, share, env } = await makeShare(t, "symlink-times", {
    "one.txt": "one\n",
    "sub/two.txt": "two\n",
  });
  await mkdir(join(share, "sub/deeper"));
  for (const [i, [path, target]] of Object.entries(SYMLINKS).entries()) {
    await symlink(target, join(share, path));
    await lutimes(join(share, path), oldTime(i) / 1000, oldTime(i) / 1000);
  }
  const host = await hostWithCli(t, { base, share });
  const pull = async (dest: string) => {
    const result = await runCli(["pull", host.link, dest, "--no-progress"], env);
    assert.equal(result.code, 0, `pull failed: ${result.stderr}`);
  };
  return { base, share, pull };
}

/** Each symlink's mtime and inode under `root`, read without following it. */
async function symlinkStats(root: string): Promise<Map<string, { mtimeMs: number; ino: number }>> {
  const stats = new Map<string, { mtimeMs: number; ino: number }>();
  for (const path of Object.keys(SYMLINKS)) {
    const found = await lstat(join(root, path));
    assert.ok(found.isSymbolicLink(), `${path} in ${root} is not a symlink`);
    stats.set(path, { mtimeMs: found.mtimeMs, ino: found.ino });
  }
  return stats;
}

function assertSameTimes(
  got: Map<string, { mtimeMs: number }>,
  want: Map<string, { mtimeMs: number }>,
): void {
  for (const [path, wanted] of want) {
    const found = got.get(path)?.mtimeMs ?? Number.NaN;
    assert.ok(
      Math.abs(found - wanted.mtimeMs) < 1,
      `mtime of symlink ${path}: ${new Date(found).toISOString()}, expected ${new Date(wanted.mtimeMs).toISOString()}`,
    );
  }
}

test("pulled symlinks keep their own mtimes, not the time of the pull", async (t) => {
  const { base, share, pull } = await shareWithOldSymlinks(t);
  const source = await symlinkStats(share);
  const dest = join(base, "dest");
  await pull(dest);
  assertSameTimes(await symlinkStats(dest), source);
  // The times are the symlinks' own: what they point to keeps the time it was pulled with.
  assert.ok((await lstat(join(dest, "one.txt"))).mtimeMs > oldTime(Object.keys(SYMLINKS).length));
});

test("a re-pull keeps unchanged symlinks as they were and puts a changed time back", async (t) => {
  const { base, share, pull } = await shareWithOldSymlinks(t);
  const source = await symlinkStats(share);
  const dest = join(base, "dest");
  await pull(dest);
  const first = await symlinkStats(dest);
  const touched = join(dest, "sub/up");
  const now = Date.now() / 1000;
  await lutimes(touched, now, now);

  await pull(dest);

  const again = await symlinkStats(dest);
  assertSameTimes(again, source);
  for (const [path, { ino }] of first) assert.equal(again.get(path)?.ino, ino, `${path} was made again`);
});
