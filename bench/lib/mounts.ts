/**
 * Network file systems mounted side by side for the mount benchmarks: `teleport mount` of a
 * host's link, sshfs and `rclone mount` (an sftp remote) over the private sshd. Each mount runs
 * as a foreground process (its log in the mount's temp dir), is ready when the kernel lists its
 * mountpoint, and is unmounted by `unmount()` (or at exit) the way a user unmounts: the process then
 * ends by itself, after its own cleanup, and is signalled only if it does not. A `clientPrefix`
 * runs the mount process elsewhere on the network (`nsenter --net=...` into a WAN's host a) while
 * the mountpoint stays in this mount namespace, where the measured commands run.
 */
import { execFile, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import type { SshServer } from "./peers.js";
import { registerCleanup, type ServerProcess, startServer, waitUntil } from "./processes.js";

const execFileAsync = promisify(execFile);

/** Whether a mount starts with its cache emptied, or keeps what an earlier mount of it cached. */
export type CacheState = "empty" | "kept";

export interface MountedFolder {
  /** The mountpoint: the remote folder's contents appear here. */
  readonly path: string;
  /** From starting the mount process until the kernel listed the mount. */
  readonly mountSeconds: number;
  /** The last lines the mount process wrote (complete once unmounted). */
  logTail(lines?: number): string;
  unmount(): Promise<UnmountReport>;
}

export interface UnmountReport {
  /** From the unmount command until the mount process exited (its cleanup: teleport's cache writes). */
  exitSeconds: number;
  /** False: it had not exited EXIT_AFTER_UNMOUNT_MS after the unmount and was signalled. */
  exitedByItself: boolean;
}

export interface MountTool {
  readonly tool: string;
  readonly role: "subject" | "peer";
  /** Mounts the tool's remote folder on `mountpoint` (an empty folder). */
  mount(mountpoint: string, cache: CacheState): Promise<MountedFolder>;
  details(): Record<string, unknown>;
}

/** How long a mount may take to appear before it counts as failed. */
const MOUNT_TIMEOUT_MS = 120_000;
/**
 * How long a mount process may take to exit once unmounted before it is signalled: teleport
 * finishes writing the chunks it read to its cache then, and a SIGTERM in that window ends it
 * with most of them unrecorded (the next "warm" mount fetched 14,018 of 14,397 chunks again).
 */
const EXIT_AFTER_UNMOUNT_MS = 60_000;

export interface TeleportMountTool extends MountTool {
  /** The chunk cache of the last mount (TELEPORT_HOME/mount-cache), or null before the first. */
  cacheFolder(): string | null;
}

/**
 * `teleport mount LINK` (of the share's folder `path`, "" for all of it). Each mount's cache
 * lives in its own TELEPORT_HOME under `scratch`: "empty" makes a fresh one, "kept" reuses the
 * last one, so a remount finds the chunks the previous mount fetched.
 */
export function teleportMountTool(
  cli: string,
  link: string,
  path: string,
  scratch: string,
  clientPrefix: readonly string[] = [],
): TeleportMountTool {
  let home: string | null = null;
  return {
    cacheFolder: () => (home === null ? null : join(home, "mount-cache")),
    tool: "teleport",
    role: "subject",
    mount: (mountpoint, cache) => {
      if (cache === "empty" || home === null) {
        if (home !== null) rmSync(home, { recursive: true, force: true });
        home = mkdtempSync(join(scratch, "mount-home-"));
      }
      const pathArgs = path === "" ? [] : ["--path", path];
      return mountWith(
        "teleport mount",
        mountpoint,
        [...clientPrefix, process.execPath, cli, "mount", link, mountpoint, ...pathArgs],
        { ...process.env, TELEPORT_HOME: home },
      );
    },
    details: () => ({ link: link.replace(/key=[^&]*/, "key=..."), path }),
  };
}

/**
 * sshfs with its defaults (no kernel_cache: it drops a file's pages at open) and `ro`, over the
 * private sshd: the way users mount a host they can ssh into.
 */
export function sshfsTool(
  ssh: SshServer,
  remoteDir: string,
  clientPrefix: readonly string[] = [],
): MountTool {
  return {
    tool: "sshfs",
    role: "peer",
    mount: (mountpoint) =>
      mountWith("sshfs", mountpoint, [
        ...clientPrefix,
        "sshfs",
        "-f",
        "-o",
        "ro",
        "-o",
        `ssh_command=ssh -p ${ssh.port} ${ssh.sshOptions.join(" ")}`,
        `root@${ssh.address}:${remoteDir}`,
        mountpoint,
      ]),
    details: () => ({ version: toolVersion("sshfs", ["--version"]), options: "ro (defaults otherwise)" }),
  };
}

/**
 * `rclone mount` of an sftp remote on the same sshd, read-only, its VFS cache off (the default):
 * rclone keeps nothing across remounts unless told to cache on disk. Hash checks off and no
 * remote shell: otherwise rclone runs md5sum over ssh on every file it opens (~200 ms a file
 * here), which no user of a mount would keep. Symlinks skipped: rclone would serve each as a
 * copy of its target (it has no symlinks without --links), and the tree would not match.
 */
export function rcloneTool(
  ssh: SshServer,
  remoteDir: string,
  scratch: string,
  clientPrefix: readonly string[] = [],
): MountTool {
  const config = join(scratch, "rclone.conf");
  writeFileSync(config, "");
  const remote = `:sftp,host=${ssh.address},port=${ssh.port},user=root,key_file=${ssh.identityFile}:${remoteDir}`;
  return {
    tool: "rclone mount",
    role: "peer",
    mount: (mountpoint) =>
      mountWith("rclone mount", mountpoint, [
        ...clientPrefix,
        "rclone",
        "mount",
        "--config",
        config,
        "--read-only",
        "--sftp-disable-hashcheck",
        "--sftp-shell-type",
        "none",
        "--sftp-skip-links",
        remote,
        mountpoint,
      ]),
    details: () => ({
      version: toolVersion("rclone", ["version"]),
      options: "--read-only --sftp-disable-hashcheck --sftp-shell-type none, vfs cache off",
    }),
  };
}

/** Starts `command` and waits until `mountpoint` is mounted; fails with its log if it exits first. */
async function mountWith(
  name: string,
  mountpoint: string,
  command: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<MountedFolder> {
  const [program, ...args] = command;
  if (program === undefined) throw new Error(`${name}: no command`);
  mkdirSync(mountpoint, { recursive: true });
  const logPath = `${mountpoint}.log`;
  const started = performance.now();
  const server = await startServer(name, program, args, { logPath, env });
  // A crash of the suite must not leave a mount behind: the kernel would keep it.
  const detach = registerCleanup(() => lazyUnmount(mountpoint));
  try {
    await waitUntil(`${name} to mount ${mountpoint}`, async () => isMounted(mountpoint), {
      timeoutMs: MOUNT_TIMEOUT_MS,
      server,
    });
  } catch (error) {
    await detach.run();
    await server.stop();
    throw error;
  }
  const mountSeconds = (performance.now() - started) / 1000;
  let unmounted: Promise<UnmountReport> | undefined;
  return {
    path: mountpoint,
    mountSeconds,
    logTail: (lines) => server.logTail(lines),
    unmount: () => {
      unmounted ??= unmountAndStop(mountpoint, server, detach.run);
      return unmounted;
    },
  };
}

async function unmountAndStop(
  mountpoint: string,
  server: ServerProcess,
  detach: () => Promise<void>,
): Promise<UnmountReport> {
  const started = performance.now();
  let exitedByItself = false;
  try {
    await execFileAsync("fusermount3", ["-u", mountpoint]);
    exitedByItself = await exitWithin(server, EXIT_AFTER_UNMOUNT_MS);
  } catch {
    // Busy or already gone: the lazy unmount below detaches it whatever holds it.
  }
  const exitSeconds = (performance.now() - started) / 1000;
  await server.stop();
  await detach();
  return { exitSeconds, exitedByItself };
}

/** Whether `server` exits within `timeoutMs`. */
async function exitWithin(server: ServerProcess, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (server.exitState() === null) {
    if (performance.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

/**
 * Synchronous, so that it still runs from the exit hook. umount -l detaches at once; the FUSE
 * process, if one is left, then sees its connection end.
 */
function lazyUnmount(mountpoint: string): void {
  if (isMounted(mountpoint)) spawnSync("umount", ["-l", mountpoint], { stdio: "ignore", timeout: 10_000 });
}

export function isMounted(mountpoint: string): boolean {
  return readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .some((line) => line.split(" ")[1] === mountpoint);
}

/**
 * Drops the kernel's clean page cache (and dentries/inodes), so that a "warm" read comes from a
 * mount's own cache on disk, not from memory. Returns why it could not, or null.
 */
export function dropPageCache(): string | null {
  try {
    // Dirty pages are not dropped: write them out first.
    spawnSync("sync", { stdio: "ignore", timeout: 60_000 });
    writeFileSync("/proc/sys/vm/drop_caches", "3");
    return null;
  } catch (error) {
    return `page cache not dropped (${(error as NodeJS.ErrnoException).code ?? String(error)})`;
  }
}

function toolVersion(command: string, args: readonly string[]): string {
  const result = spawnSync(command, args, { encoding: "utf8", timeout: 10_000 });
  return `${result.stdout ?? ""}${result.stderr ?? ""}`.trim().split("\n")[0] ?? "";
}
