/**
 * `teleport mount LINK MOUNTPOINT`: the share as a read-only folder (FUSE), listed once from the
 * host, its bytes fetched by verified chunks as they are read; `teleport umount MOUNTPOINT`.
 */
import { execFile } from "node:child_process";
import { stat } from "node:fs/promises";
import { promisify } from "node:util";
import { TeleportClient } from "../client/client.js";
import { ErrorCode, TeleportError } from "../errors.js";
import { loadFuse } from "../mount/binding.js";
import { controlFetcher } from "../mount/chunk-fetcher.js";
import { ChunkSource } from "../mount/chunk-source.js";
import { FuseSession } from "../mount/fuse-session.js";
import { InodeTable } from "../mount/inode-table.js";
import { describeCounts, MountCache } from "../mount/mount-cache.js";
import { MountHost } from "../mount/mount-host.js";
import { RemoteFiles } from "../mount/remote-files.js";
import { type Entry, EntryKind } from "../wire/messages.js";
import { normalizeUserPath } from "../wire/path.js";

export interface MountFlags {
  path?: string;
  /** Bound of the persistent chunk cache, in bytes. */
  cacheSize?: number;
  cacheDir?: string;
}

export async function mountCommand(link: string, mountpoint: string, flags: MountFlags): Promise<void> {
  // What cannot mount says so before connecting: this machine, or the mountpoint.
  loadFuse();
  await requireFolder(mountpoint);
  const cache = MountCache.open({ mountpoint, folder: flags.cacheDir, capacity: flags.cacheSize });
  const client = await TeleportClient.connect(link).catch(async (err) => {
    await cache.close();
    throw err;
  });
  const host = new MountHost(client);
  const chunks = new ChunkSource(controlFetcher(host), { store: cache.store, local: cache.local });
  try {
    const table = await listShare(client, normalizeUserPath(flags.path ?? ""));
    const files = new RemoteFiles(host, chunks);
    const session = FuseSession.mount(mountpoint, table, (node, offset, length, signal) =>
      files.read(node, offset, length, signal),
    );
    const unmount = () => session.unmount();
    process.once("SIGINT", unmount);
    process.once("SIGTERM", unmount);
    process.stderr.write(
      `teleport: mounted at ${mountpoint} (read-only); Ctrl-C or \`teleport umount ${mountpoint}\` unmounts\n`,
    );
    try {
      await session.closed;
    } finally {
      process.off("SIGINT", unmount);
      process.off("SIGTERM", unmount);
    }
  } finally {
    await host.close();
    await cache.close();
    process.stderr.write(describeCounts(chunks.counts()));
  }
}

async function requireFolder(mountpoint: string): Promise<void> {
  const info = await stat(mountpoint).catch(() => undefined);
  if (info?.isDirectory() !== true)
    throw new TeleportError(
      ErrorCode.USAGE,
      `${mountpoint} is not a folder: mount on an existing (empty) folder`,
    );
}

/** The folder at `path` and everything beneath it, as an inode table. */
async function listShare(client: TeleportClient, path: string): Promise<InodeTable> {
  const root = await client.stat(path);
  if (root.kind !== EntryKind.DIRECTORY)
    throw new TeleportError(ErrorCode.USAGE, `"${path}" is not a folder of the share`);
  const entries: Entry[] = [];
  for await (const entry of client.list(path, { recursive: true })) entries.push(entry);
  return new InodeTable(root, entries);
}

/** Detaches a teleport mount; its `teleport mount` process then exits. */
export async function umountCommand(mountpoint: string): Promise<void> {
  const run = promisify(execFile);
  try {
    // fusermount3 lets a user unmount what they mounted; -z: lazily, as open files close.
    await run("fusermount3", ["-u", "-z", mountpoint]);
  } catch (fusermountError) {
    try {
      await run("umount", ["-l", mountpoint]);
    } catch {
      const reason =
        fusermountError instanceof Error ? fusermountError.message.trim() : String(fusermountError);
      throw new TeleportError(ErrorCode.IO, `could not unmount ${mountpoint}: ${reason}`);
    }
  }
}
