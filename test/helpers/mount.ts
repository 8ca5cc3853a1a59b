/**
 * A real host serving the fixture tree and a real `teleport mount` of it, for the mount's end
 * to end tests; both end with the test. Tests skip where this machine cannot mount.
 */
import assert from "node:assert/strict";
import { mkdir, open, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { isTeleportError } from "../../src/errors.js";
import { loadFuse } from "../../src/mount/binding.js";
import { type CliEnv, type HostProcess, type RunningCli, spawnCli, startHost } from "./cli.js";
import { onCleanup, tempDir, waitFor } from "./context.js";
import { makeTree, pseudoRandomBytes } from "./tree.js";

/** Why this machine cannot run mounting tests (not root, no /dev/fuse, no addon), or undefined. */
export function cannotMount(): string | undefined {
  if (process.getuid?.() !== 0) return "mounting in tests needs root";
  try {
    loadFuse();
    return undefined;
  } catch (err) {
    return isTeleportError(err) ? err.detail : String(err);
  }
}

export interface Mounted {
  share: string;
  host: HostProcess;
  /** The host's TELEPORT_HOME: a host restarted with it keeps its identity and link. */
  hostHome: string;
  mountpoint: string;
  env: CliEnv;
  mount: RunningCli;
}

/** A file with holes: the host's chunk list skips them, and the mount reads them as zeros. */
export const SPARSE = "sparse.bin";

/** Hosts the fixture tree and mounts it (`args` go to `teleport mount`); both end with the test. */
export async function hostAndMount(t: TestContext, args: string[] = []): Promise<Mounted> {
  const base = await tempDir(t, "mount");
  const share = join(base, "share");
  const mountpoint = join(base, "mnt");
  await mkdir(share);
  await mkdir(mountpoint);
  await makeTree(share);
  await writeSparseFile(join(share, SPARSE));
  const hostHome = join(base, "host-home");
  const host = await startHost(share, { home: hostHome });
  onCleanup(t, () => host.stop());
  const env = { TELEPORT_HOME: join(base, "client-home") };
  const mount = await startMount(t, host.link, mountpoint, env, args);
  return { share, host, hostHome, mountpoint, env, mount };
}

/**
 * `teleport mount LINK MOUNTPOINT ...args`, once it says it is mounted; at the test's end the
 * process is killed if still running and the mountpoint freed whatever the test left.
 */
export async function startMount(
  t: TestContext,
  link: string,
  mountpoint: string,
  env: CliEnv,
  args: string[] = [],
): Promise<RunningCli> {
  const mount = spawnCli(["mount", link, mountpoint, ...args], env);
  onCleanup(t, async () => {
    if (mount.process.exitCode === null && mount.process.signalCode === null) {
      mount.process.kill("SIGKILL");
      await mount.result;
    }
    if (await isMounted(mountpoint)) await spawnCli(["umount", "--force", mountpoint], env).result;
  });
  await waitFor(() => mount.stderr().includes("mounted at") || mount.process.exitCode !== null, {
    what: "teleport mount to mount",
    timeoutMs: 20_000,
  });
  assert.equal(mount.process.exitCode, null, `teleport mount exited: ${mount.stderr()}`);
  return mount;
}

async function writeSparseFile(path: string): Promise<void> {
  const file = await open(path, "w");
  try {
    await file.write(pseudoRandomBytes(100_000, "sparse-data"), 0, 100_000, 3 * 1024 * 1024);
    await file.truncate(6 * 1024 * 1024);
  } finally {
    await file.close();
  }
}

export async function isMounted(mountpoint: string): Promise<boolean> {
  return (await readFile("/proc/self/mounts", "utf8"))
    .split("\n")
    .some((line) => line.split(" ")[1] === mountpoint);
}

export async function readAt(path: string, offset: number, length: number): Promise<Buffer> {
  const file = await open(path, "r");
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await file.read(buffer, 0, length, offset);
    return buffer.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

/** The port in a share link (teleport://HOST:PORT/...). */
export function linkPort(link: string): number {
  const port = new URL(link).port;
  assert.ok(port !== "", `no port in ${link}`);
  return Number(port);
}
