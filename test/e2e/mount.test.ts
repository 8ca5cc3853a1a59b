/**
 * `teleport mount` end to end: a real host serving the fixture tree, a real mount process, the
 * kernel's view of the mount compared with the host's files (entries, kinds, modes, sizes,
 * mtimes, bytes, random ranges), then `teleport umount` and SIGTERM each ending the mount.
 * Skips where this machine cannot mount (not root, no /dev/fuse, no FUSE addon).
 */
import assert from "node:assert/strict";
import { mkdir, open, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { ErrorCode, isTeleportError } from "../../src/errors.js";
import { loadFuse } from "../../src/mount/binding.js";
import {
  type CliEnv,
  type HostProcess,
  type RunningCli,
  runCli,
  spawnCli,
  startHost,
} from "../helpers/cli.js";
import { onCleanup, tempDir, waitFor } from "../helpers/context.js";
import { compareTrees, FIXTURE, makeTree, pseudoRandomBytes } from "../helpers/tree.js";

function cannotMount(): string | undefined {
  if (process.getuid?.() !== 0) return "mounting in tests needs root";
  try {
    loadFuse();
    return undefined;
  } catch (err) {
    return isTeleportError(err) ? err.detail : String(err);
  }
}

const skip = cannotMount();

interface Mounted {
  share: string;
  host: HostProcess;
  mountpoint: string;
  env: CliEnv;
  mount: RunningCli;
}

/** Hosts the fixture tree and mounts it (`args` go to `teleport mount`); both end with the test. */
async function hostAndMount(t: TestContext, args: string[] = []): Promise<Mounted> {
  const base = await tempDir(t, "mount");
  const share = join(base, "share");
  const mountpoint = join(base, "mnt");
  await mkdir(share);
  await mkdir(mountpoint);
  await makeTree(share);
  await writeSparseFile(join(share, SPARSE));
  const host = await startHost(share, { home: join(base, "host-home") });
  onCleanup(t, () => host.stop());
  const env = { TELEPORT_HOME: join(base, "client-home") };
  const mount = spawnCli(["mount", host.link, mountpoint, ...args], env);
  onCleanup(t, async () => {
    if (mount.process.exitCode === null && mount.process.signalCode === null) {
      mount.process.kill("SIGTERM");
      await mount.result;
    }
  });
  await waitFor(() => mount.stderr().includes("mounted at") || mount.process.exitCode !== null, {
    what: "teleport mount to mount",
    timeoutMs: 20_000,
  });
  assert.equal(mount.process.exitCode, null, `teleport mount exited: ${mount.stderr()}`);
  return { share, host, mountpoint, env, mount };
}

/** A file with holes: the host's chunk list skips them, and the mount reads them as zeros. */
const SPARSE = "sparse.bin";

async function writeSparseFile(path: string): Promise<void> {
  const file = await open(path, "w");
  try {
    await file.write(pseudoRandomBytes(100_000, "sparse-data"), 0, 100_000, 3 * 1024 * 1024);
    await file.truncate(6 * 1024 * 1024);
  } finally {
    await file.close();
  }
}

async function isMounted(mountpoint: string): Promise<boolean> {
  return (await readFile("/proc/self/mounts", "utf8"))
    .split("\n")
    .some((line) => line.split(" ")[1] === mountpoint);
}

async function readAt(path: string, offset: number, length: number): Promise<Buffer> {
  const file = await open(path, "r");
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await file.read(buffer, 0, length, offset);
    return buffer.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

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

test("a file changed on the host since the mount listed it reads as EIO, never as other bytes", {
  skip,
}, async (t) => {
  const { share, mountpoint } = await hostAndMount(t);
  const path = FIXTURE.oneMiB;
  const listed = await readFile(join(share, path));
  await writeFile(join(share, path), pseudoRandomBytes(listed.length, "changed"));
  await assert.rejects(readFile(join(mountpoint, path)), { code: "EIO" });
  // The other files are untouched and still read.
  assert.ok(
    (await readFile(join(mountpoint, FIXTURE.manyChunks))).equals(
      await readFile(join(share, FIXTURE.manyChunks)),
    ),
  );
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

test("reads after the host is gone are EIO at once, pages already read stay readable", {
  skip,
}, async (t) => {
  const { share, host, mountpoint } = await hostAndMount(t);
  const before = await readFile(join(mountpoint, FIXTURE.spaces));
  assert.ok(before.equals(await readFile(join(share, FIXTURE.spaces))));
  await host.stop();
  await assert.rejects(readFile(join(mountpoint, FIXTURE.manyChunks)), { code: "EIO" });
  assert.ok((await readFile(join(mountpoint, FIXTURE.spaces))).equals(before));
});

test("a mountpoint that is not a folder is a usage error, before connecting", { skip }, async (t) => {
  const base = await tempDir(t, "mount-nofolder");
  const link =
    "teleport://127.0.0.1:9/?fp=2neAlZzH_PaHmLnKjFt8IA9i8I4Z6UrpbZl7zHb5G8E&key=9_Jc6QS6E5JjQt8XZQcb5g";
  const result = await runCli(["mount", link, join(base, "missing")], { TELEPORT_HOME: join(base, "home") });
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, new RegExp(`${ErrorCode.USAGE}: .*missing is not a folder`));
});
