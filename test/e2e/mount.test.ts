/**
 * `teleport mount` end to end: a real host serving the fixture tree, a real mount process, the
 * kernel's view of the mount compared with the host's files (entries, kinds, modes, sizes,
 * mtimes, bytes, random ranges), then `teleport umount` and SIGTERM each ending the mount; a
 * mountpoint that is a symlink or a file is refused before connecting.
 * Skips where this machine cannot mount (not root, no /dev/fuse, no FUSE addon).
 */
import assert from "node:assert/strict";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { ErrorCode } from "../../src/errors.js";
import { runCli, spawnCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/context.js";
import { cannotMount, hostAndMount, isMounted, readAt } from "../helpers/mount.js";
import { compareTrees, FIXTURE, pseudoRandomBytes } from "../helpers/tree.js";

const skip = cannotMount();

test("a mounted share lists and reads as the host's files, and umount ends it", { skip }, async (t) => {
  const { share, mountpoint, env, mount } = await hostAndMount(t);
  await compareTrees(share, mountpoint, {
    ignore: [FIXTURE.outsideAbsolute, FIXTURE.outsideRelative],
  });
  const expected = await readFile(join(share, FIXTURE.manyChunks));
  const random = pseudoRandomBytes(64, "mount-ranges");
  for (let i = 0; i < 16; i++) {
    const offset = random.readUInt32LE((i * 4) % 60) % expected.length;
    const length = 1 + (random[i] ?? 0) * 997;
    const got = await readAt(join(mountpoint, FIXTURE.manyChunks), offset, length);
    assert.ok(got.equals(expected.subarray(offset, offset + length)), `bytes ${offset}+${length}`);
  }
  await assert.rejects(readFile(join(mountpoint, "no-such-file")), { code: "ENOENT" });

  const umount = await runCli(["umount", mountpoint], env);
  assert.equal(umount.code, 0, umount.stderr);
  const result = await mount.result;
  assert.equal(result.code, 0, result.stderr);
  assert.equal(await isMounted(mountpoint), false);
});

test("--path mounts one folder of the share; SIGTERM unmounts and exits cleanly", { skip }, async (t) => {
  const { share, mountpoint, mount } = await hostAndMount(t, ["--path", FIXTURE.nested]);
  await compareTrees(join(share, FIXTURE.nested), mountpoint);
  assert.equal(await isMounted(mountpoint), true);
  mount.process.kill("SIGTERM");
  const result = await mount.result;
  assert.equal(result.code, 0, result.stderr);
  assert.equal(await isMounted(mountpoint), false);
});

test("without /dev/fuse, mount fails with FUSE_UNAVAILABLE and a hint, before connecting", {
  skip,
}, async (t) => {
  const base = await tempDir(t, "mount-nofuse");
  // A private mount namespace whose /dev is an empty tmpfs: this process alone has no /dev/fuse.
  const wrapper = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none /dev && exec "$0" "$@"'];
  const link =
    "teleport://127.0.0.1:9/?fp=2neAlZzH_PaHmLnKjFt8IA9i8I4Z6UrpbZl7zHb5G8E&key=9_Jc6QS6E5JjQt8XZQcb5g";
  const running = spawnCli(["mount", link, base], { TELEPORT_HOME: join(base, "home") }, wrapper);
  const result = await running.result;
  assert.equal(result.code, 1, result.stderr);
  assert.match(
    result.stderr,
    new RegExp(`${ErrorCode.FUSE_UNAVAILABLE}: this machine has no usable /dev/fuse`),
  );
  assert.match(result.stderr, /hint: .*libfuse3/);
});

test("a mountpoint that is not a folder is a usage error, before connecting", { skip }, async (t) => {
  const base = await tempDir(t, "mount-nofolder");
  const link =
    "teleport://127.0.0.1:9/?fp=2neAlZzH_PaHmLnKjFt8IA9i8I4Z6UrpbZl7zHb5G8E&key=9_Jc6QS6E5JjQt8XZQcb5g";
  const result = await runCli(["mount", link, join(base, "missing")], { TELEPORT_HOME: join(base, "home") });
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, new RegExp(`${ErrorCode.USAGE}: .*missing is not a folder`));
});

test("a mountpoint that is a symlink, even to a folder, or a file is refused, before connecting", {
  skip,
}, async (t) => {
  const base = await tempDir(t, "mount-symlink");
  await mkdir(join(base, "folder"));
  await symlink(join(base, "folder"), join(base, "link"));
  await writeFile(join(base, "file"), "not a folder");
  const link =
    "teleport://127.0.0.1:9/?fp=2neAlZzH_PaHmLnKjFt8IA9i8I4Z6UrpbZl7zHb5G8E&key=9_Jc6QS6E5JjQt8XZQcb5g";
  const env = { TELEPORT_HOME: join(base, "home") };
  const viaLink = await runCli(["mount", link, join(base, "link")], env);
  assert.notEqual(viaLink.code, 0);
  assert.match(viaLink.stderr, new RegExp(`${ErrorCode.USAGE}: .*link is a symbolic link`));
  const onFile = await runCli(["mount", link, join(base, "file")], env);
  assert.notEqual(onFile.code, 0);
  assert.match(onFile.stderr, new RegExp(`${ErrorCode.USAGE}: .*file is not a folder`));
  assert.equal(await isMounted(join(base, "folder")), false, "nothing was mounted where the link pointed");
});
