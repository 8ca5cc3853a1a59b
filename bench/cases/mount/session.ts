/**
 * What one mount benchmark runs against: a random file and a real tree, each shared by a
 * teleport host and by the private sshd (for sshfs and rclone), on loopback or in host b of an
 * emulated WAN, and the mount tools that read them from here (or from host a).
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import type { CommandSpec } from "../../lib/measure.js";
import { type MountTool, rcloneTool, sshfsTool, teleportMountTool } from "../../lib/mounts.js";
import type { NetsimLink } from "../../lib/netsim.js";
import { ensureRandomFile, type Payload } from "../../lib/payload.js";
import { type SshServer, startSshServer, whyUnavailable } from "../../lib/peers.js";
import {
  LOOPBACK,
  makeTempDir,
  type ServerSite,
  type TempDir,
  treeScratchParent,
} from "../../lib/processes.js";
import {
  startTeleportHost,
  type TeleportHost,
  teleportPullCommand,
  uncleanExit,
} from "../../lib/teleport.js";
import { errorMessage } from "../../lib/transfer.js";
import type { BenchContext } from "../../lib/types.js";
import { realTree } from "../real-tree/trees.js";

export const MiB = 1024 * 1024;

/** Sizes and counts of one mount benchmark. */
export interface MountScale {
  fileBytes: number;
  randomReads: number;
  /** The folder of the real tree measured ("" = all of it): a WAN walks a part of it. */
  treeFolder: string;
}

/** A tool's mounts of the file share and of the tree share, measured as one contender. */
export interface MountContender {
  name: string;
  failure: string | null;
  file: MountTool;
  /** Null where the tree could not be had (the tree workloads are then skipped). */
  tree: MountTool | null;
  /** Measured in this contender's rounds (teleport's): what its figures are judged against. */
  limits: PhysicalLimits | null;
}

/** The physical limits of the sequential reads, measured in the same run. */
export interface PhysicalLimits {
  /** A random file of the measured file's size on the file system of the mount's cache. */
  diskFile: string;
  /** The mount's chunk cache (its files read back are the limit of the cache's layout). */
  cacheFolder(): string | null;
  /** A cold `teleport pull --json` of the same file from the same host into `destDir`. */
  pull(destDir: string, home: string): CommandSpec;
}

/** The tree measured: its path on the server and what a correct walk of it finds. */
export interface TreeUnderTest {
  /** Folder on the server (for sshfs and rclone). */
  serverPath: string;
  /** Path inside the teleport host's share (for `teleport mount --path`). */
  sharePath: string;
  /** Files beneath it, relative to it, sorted. */
  files: string[];
  description: string;
}

export interface MountSession {
  context: BenchContext;
  scale: MountScale;
  file: Payload;
  tree: TreeUnderTest | null;
  contenders: MountContender[];
  /** Where mountpoints, mount logs and teleport homes go (on disk: a cache lives on disk). */
  scratch: string;
  notes: string[];
  close(): Promise<void>;
}

/** Runs a command where the mount clients run: here, or in host a of the WAN. */
export function clientPrefix(link: NetsimLink | null): string[] {
  return link === null ? [] : ["nsenter", `--net=/run/netns/${link.name}-a`, "--"];
}

export async function openMountSession(
  context: BenchContext,
  scale: MountScale,
  link: NetsimLink | null,
): Promise<MountSession> {
  const notes: string[] = [];
  const closers: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const closer of closers.reverse()) await closer();
  };
  try {
    const site = link === null ? LOOPBACK : link.site("b");
    const prefix = clientPrefix(link);
    const scratchDir = makeTempDir("mount");
    closers.push(async () => scratchDir.remove());
    // The file lives in memory, so that dropping the page cache empties only the clients' caches.
    const fileDir: TempDir = makeTempDir("mount-file", treeScratchParent(2 * scale.fileBytes));
    closers.push(async () => fileDir.remove());
    const file = await ensureRandomFile(join(fileDir.path, "share", "big.bin"), scale.fileBytes);
    const tree = await treeUnderTest(context, scale, notes);
    // Beside the mounts' caches (scratch is on disk): what the disk gives a read of as many bytes.
    const diskFile = await ensureRandomFile(join(scratchDir.path, "disk", "same-size.bin"), scale.fileBytes);

    const fileHost = await startTeleportHost(context.cli, file.root, { site });
    closers.push(() => stopHost(fileHost, notes));
    const treeHost = tree === null ? null : await startTeleportHost(context.cli, tree.root, { site });
    if (treeHost !== null) closers.push(() => stopHost(treeHost, notes));

    const scratch = scratchDir.path;
    const teleportFile = teleportMountTool(context.cli, fileHost.link, "", scratch, prefix);
    const contenders: MountContender[] = [
      {
        name: "teleport",
        failure: null,
        file: teleportFile,
        tree:
          tree === null || treeHost === null
            ? null
            : teleportMountTool(context.cli, treeHost.link, tree.test.sharePath, scratch, prefix),
        limits: {
          diskFile: diskFile.path,
          cacheFolder: () => teleportFile.cacheFolder(),
          pull: (destDir, home) =>
            prefixed(prefix, teleportPullCommand(context.cli, fileHost.link, destDir, home)),
        },
      },
    ];
    const ssh = await startSsh(context, site, prefix, notes);
    if (ssh !== null) {
      closers.push(() => ssh.stop());
      contenders.push(...sshContenders(context, ssh, file, tree?.test ?? null, scratch, prefix, notes));
    }
    return { context, scale, file, tree: tree?.test ?? null, contenders, scratch, notes, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** `spec` run through `prefix` (where the mount clients run). */
function prefixed(prefix: readonly string[], spec: CommandSpec): CommandSpec {
  const [command, ...args] = prefix;
  return command === undefined ? spec : { ...spec, command, args: [...args, spec.command, ...spec.args] };
}

async function stopHost(host: TeleportHost, notes: string[]): Promise<void> {
  const unclean = uncleanExit(await host.stop());
  if (unclean !== null) notes.push(`teleport ${unclean}`);
}

async function startSsh(
  context: BenchContext,
  site: ServerSite,
  prefix: readonly string[],
  notes: string[],
): Promise<SshServer | null> {
  const reason = whyUnavailable(context.unavailable, ["openssh-server", "openssh-client"]);
  if (reason !== null) {
    notes.push(`sshfs and rclone mount skipped: ${reason}`);
    return null;
  }
  try {
    return await startSshServer(site, prefix);
  } catch (error) {
    notes.push(`sshfs and rclone mount skipped: the private sshd did not start: ${errorMessage(error)}`);
    return null;
  }
}

function sshContenders(
  context: BenchContext,
  ssh: SshServer,
  file: Payload,
  tree: TreeUnderTest | null,
  scratch: string,
  prefix: readonly string[],
  notes: string[],
): MountContender[] {
  const contenders: MountContender[] = [];
  const sshfs = whyUnavailable(context.unavailable, ["sshfs"]);
  if (sshfs === null) {
    contenders.push({
      name: "sshfs",
      failure: null,
      file: sshfsTool(ssh, file.root, prefix),
      tree: tree === null ? null : sshfsTool(ssh, tree.serverPath, prefix),
      limits: null,
    });
  } else notes.push(`sshfs skipped: ${sshfs}`);
  const rclone = whyUnavailable(context.unavailable, ["rclone"]);
  if (rclone === null) {
    contenders.push({
      name: "rclone mount",
      failure: null,
      file: rcloneTool(ssh, file.root, scratch, prefix),
      tree: tree === null ? null : rcloneTool(ssh, tree.serverPath, scratch, prefix),
      limits: null,
    });
  } else notes.push(`rclone mount skipped: ${rclone}`);
  return contenders;
}

/** The real tree of this mode (real-tree/trees.ts), or null with a note saying why not. */
async function treeUnderTest(
  context: BenchContext,
  scale: MountScale,
  notes: string[],
): Promise<{ root: string; test: TreeUnderTest } | null> {
  const tree = await realTree(context);
  if ("unavailable" in tree) {
    notes.push(`tree workloads skipped: ${tree.unavailable}`);
    return null;
  }
  const release = tree.old;
  const sharePath = scale.treeFolder === "" ? release.name : `${release.name}/${scale.treeFolder}`;
  const serverPath = join(release.root, sharePath);
  const files = (
    readdirSync(serverPath, { recursive: true, withFileTypes: true }) as import("node:fs").Dirent[]
  )
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name).slice(serverPath.length + 1))
    .sort();
  const description = `${tree.spec.package} ${tree.versions.old}${scale.treeFolder === "" ? "" : `, folder ${scale.treeFolder}`}: ${files.length} files`;
  notes.push(description, ...tree.notes);
  return { root: release.root, test: { serverPath, sharePath, files, description } };
}
