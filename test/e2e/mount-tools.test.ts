/**
 * The tools people point at a folder, run on a `teleport mount` of a real host and on the host's
 * own folder, must answer alike (issue 25, point 4): mmap, cp -a, tar c, grep -r, git status,
 * sha256sum of every file, rsync --checksum (nothing to do); and reads of random ranges are the
 * host file's bytes (a seeded property test: the seed is in every failure message, and
 * TELEPORT_TEST_SEED replays it). Skips where this machine cannot mount (not root, no /dev/fuse,
 * no FUSE addon), and each tool's check where the tool is missing.
 */
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { randomInt } from "node:crypto";
import { mkdir, open, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { promisify } from "node:util";
import { startHost } from "../helpers/cli.js";
import { onCleanup, tempDir } from "../helpers/context.js";
import { cannotMount, startMount } from "../helpers/mount.js";
import { compareTrees, FIXTURE, MiB, makeTree, pseudoRandomBytes, sourceText } from "../helpers/tree.js";

const run = promisify(execFile);

function missingTool(command: string): string | undefined {
  const probe = spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" });
  return probe.status === 0 ? undefined : `${command} is not installed`;
}

/** Several chunks of each size class: the ranges below cross chunk boundaries often. */
const LARGE = "large.bin";
const LARGE_SIZE = 9 * MiB + 4093;
const REPO = "repo";

/**
 * The fixture tree without its links out of the share (the host never serves them, so the
 * folder and the mount could not agree on them), a larger random file, and a git repository
 * with a committed, a modified and an untracked file.
 */
async function makeShare(share: string, withRepo: boolean): Promise<void> {
  await mkdir(share);
  await makeTree(share);
  await rm(join(share, FIXTURE.outsideAbsolute));
  await rm(join(share, FIXTURE.outsideRelative));
  await writeFile(join(share, LARGE), pseudoRandomBytes(LARGE_SIZE, "mount-tools-large"));
  if (!withRepo) return;
  const repo = join(share, REPO);
  await mkdir(join(repo, "src"), { recursive: true });
  await writeFile(join(repo, "src", "main.c"), sourceText(400, "main"));
  await writeFile(join(repo, "README"), "a repository served by a teleport host\n");
  const git = (...args: string[]) =>
    run("git", ["-c", "user.name=t", "-c", "user.email=t@example.invalid", ...args], { cwd: repo });
  await git("init", "-q");
  await git("add", ".");
  await git("commit", "-q", "-m", "first");
  await writeFile(join(repo, "README"), "changed after the commit\n");
  await writeFile(join(repo, "untracked.txt"), "never added\n");
}

interface Mounted {
  share: string;
  mountpoint: string;
  scratch: string;
}

async function hostAndMount(t: TestContext): Promise<Mounted> {
  const base = await tempDir(t, "mount-tools");
  const share = join(base, "share");
  const mountpoint = join(base, "mnt");
  const scratch = join(base, "scratch");
  await mkdir(mountpoint);
  await mkdir(scratch);
  await makeShare(share, missingTool("git") === undefined);
  const host = await startHost(share, { home: join(base, "host-home") });
  onCleanup(t, () => host.stop());
  await startMount(t, host.link, mountpoint, { TELEPORT_HOME: join(base, "client-home") });
  return { share, mountpoint, scratch };
}

/** stdout of `script` run by bash in `cwd` with "$1".. set to `args`; fails on a non-zero exit. */
async function shell(cwd: string, script: string, ...args: string[]): Promise<string> {
  const { stdout } = await run("bash", ["-c", `set -o pipefail; ${script}`, "sh", ...args], {
    cwd,
    maxBuffer: 64 * MiB,
    encoding: "utf8",
  });
  return stdout;
}

/** The same command's output in the host's folder and in the mount. */
async function onBoth(mounted: Mounted, script: string, ...args: string[]): Promise<[string, string]> {
  return [await shell(mounted.share, script, ...args), await shell(mounted.mountpoint, script, ...args)];
}

const skip = cannotMount();

test("tools read a mounted share exactly as they read the host's folder", { skip }, async (t) => {
  const mounted = await hostAndMount(t);

  await t.test("mmap of a file maps the host file's bytes", { skip: missingTool("python3") }, async () => {
    const script =
      "import hashlib, mmap, sys\n" +
      "with open(sys.argv[1], 'rb') as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:\n" +
      "    print(hashlib.sha256(m[:]).hexdigest(), len(m))\n";
    const [host, mount] = await onBoth(mounted, 'python3 -c "$1" "$2"', script, LARGE);
    assert.equal(mount, host);
  });

  await t.test("cp -a copies the same tree: entries, modes, mtimes, symlinks, bytes", async () => {
    const copy = join(mounted.scratch, "cp-a");
    await run("cp", ["-a", `${mounted.mountpoint}/.`, copy]);
    await compareTrees(mounted.share, copy);
  });

  await t.test("tar c: the same listing and the same archive", async () => {
    const tar = "tar --sort=name --format=gnu -cf - . | tar -tvf - --full-time";
    const [host, mount] = await onBoth(mounted, tar);
    assert.equal(mount, host, "listing of tar c");
    const archive = "tar --sort=name --format=gnu -cf - . | sha256sum";
    const [hostArchive, mountArchive] = await onBoth(mounted, archive);
    assert.equal(mountArchive, hostArchive, "bytes of the archive");
  });

  await t.test("grep -r finds the same lines", async () => {
    const [host, mount] = await onBoth(mounted, "grep -r -n -a -e compute -e name . | sort");
    assert.notEqual(host, "");
    assert.equal(mount, host);
  });

  await t.test("sha256sum of every file", async () => {
    const [host, mount] = await onBoth(mounted, "find . -type f -print0 | sort -z | xargs -0 sha256sum");
    assert.ok(host.split("\n").length > 10, host);
    assert.equal(mount, host);
  });

  await t.test("git status in a repository on the mount", { skip: missingTool("git") }, async () => {
    // safe.directory: the mount's files belong to the mounting user, as the host's do to theirs.
    // --no-optional-locks: on the host's folder, status would otherwise rewrite .git/index,
    // which the mount listed before (then rsync below would rightly see it changed).
    const status =
      'cd "$1" && git --no-optional-locks -c safe.directory="*" status --porcelain=v1 --untracked-files=all';
    const [host, mount] = await onBoth(mounted, status, REPO);
    assert.equal(host, " M README\n?? untracked.txt\n");
    assert.equal(mount, host);
  });

  await t.test(
    "rsync -a --checksum from the mount to the host's folder has nothing to do",
    {
      skip: missingTool("rsync"),
    },
    async () => {
      const changes = await shell(
        mounted.scratch,
        'rsync -a --checksum --dry-run --itemize-changes "$1/" "$2/"',
        mounted.mountpoint,
        mounted.share,
      );
      assert.equal(changes, "");
    },
  );

  await t.test("random ranges read as the host file's bytes (property test)", async () => {
    const seed = Number(process.env.TELEPORT_TEST_SEED ?? randomInt(2 ** 31));
    await compareRandomRanges(join(mounted.share, LARGE), join(mounted.mountpoint, LARGE), seed, 400);
  });
});

/**
 * `count` reads at random offsets (a fifth of them near the end, some past it) of random lengths
 * (up to two of the largest chunks), each compared with the same range of the host's file.
 */
async function compareRandomRanges(expectedPath: string, mountedPath: string, seed: number, count: number) {
  const random = seeded(seed);
  const [expected, mounted] = [await open(expectedPath, "r"), await open(mountedPath, "r")];
  try {
    const size = (await expected.stat()).size;
    for (let i = 0; i < count; i++) {
      const nearEnd = random() < 0.2;
      const offset = nearEnd ? size - Math.floor(random() * 70_000) : Math.floor(random() * size);
      const length = 1 + Math.floor(random() * (random() < 0.5 ? 8192 : 600_000));
      const [want, got] = [Buffer.alloc(length), Buffer.alloc(length)];
      const wanted = await expected.read(want, 0, length, offset);
      const gotten = await mounted.read(got, 0, length, offset);
      const where = `read ${i} of ${count}: ${length} bytes at ${offset} (seed ${seed}; TELEPORT_TEST_SEED=${seed} replays)`;
      assert.equal(gotten.bytesRead, wanted.bytesRead, `length of ${where}`);
      assert.ok(
        got.subarray(0, gotten.bytesRead).equals(want.subarray(0, wanted.bytesRead)),
        `bytes of ${where}`,
      );
    }
  } finally {
    await expected.close();
    await mounted.close();
  }
}

/** mulberry32: a small generator whose sequence the seed alone decides. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
