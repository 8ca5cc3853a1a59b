/**
 * `teleport mount LINK MOUNTPOINT`: the share as a read-only folder (FUSE), listed once from the
 * host, its bytes fetched by verified chunks as they are read; `teleport umount MOUNTPOINT`.
 */
import { execFile } from "node:child_process";
import { stat } from "node:fs/promises";
import { promisify } from "node:util";
import { ErrorCode, TeleportError } from "../errors.js";
import { loadFuse } from "../mount/binding.js";
import { ChangeFeed } from "../mount/change-feed.js";
import { controlFetcher, routedFetcher } from "../mount/chunk-fetcher.js";
import { ChunkSource } from "../mount/chunk-source.js";
import { FolderListings } from "../mount/folder-listings.js";
import { DEFAULT_REQUEST_TIMEOUT_MS, FuseSession } from "../mount/fuse-session.js";
import { InodeTable } from "../mount/inode-table.js";
import { raiseKernelReadAhead } from "../mount/kernel-readahead.js";
import { describeCounts, MountCache } from "../mount/mount-cache.js";
import { MountHost } from "../mount/mount-host.js";
import { abortConnection, findMount, TELEPORT_FSTYPE } from "../mount/mount-table.js";
import { POOL_FETCH_BYTES, PoolFetcher } from "../mount/pool-fetcher.js";
import { RemoteFiles } from "../mount/remote-files.js";
import { type Entry, EntryKind } from "../wire/messages.js";
import { normalizeUserPath } from "../wire/path.js";

export interface MountFlags {
  path?: string;
  /** Bound of the persistent chunk cache, in bytes. */
  cacheSize?: number;
  cacheDir?: string;
  /** Seconds a read waits for the host before EIO. */
  timeout?: number;
  /** Seconds a listing is trusted when the host sends no changes. */
  ttl?: number;
  /** false: listings are refreshed by the TTL only (`--no-watch`). */
  watch?: boolean;
  /** Entries listed at mount (and on a resync); folders beyond are listed when visited. */
  listedAtMount?: number;
}

const DEFAULT_TTL_SECONDS = 5;

export async function mountCommand(link: string, mountpoint: string, flags: MountFlags): Promise<void> {
  // What cannot mount says so before connecting: this machine, or the mountpoint.
  loadFuse();
  await requireFolder(mountpoint);
  const notice = (message: string) => process.stderr.write(`teleport: ${message}\n`);
  const cache = MountCache.open({ mountpoint, folder: flags.cacheDir, capacity: flags.cacheSize });
  const host = await MountHost.forLink(link, notice).catch(async (err) => {
    await cache.close();
    throw err;
  });
  const pool = new PoolFetcher(host, cache.store);
  const fetcher = routedFetcher(controlFetcher(host), pool.fetch, POOL_FETCH_BYTES);
  const chunks = new ChunkSource(fetcher, { store: cache.store, local: cache.local });
  try {
    const timeoutMs = (flags.timeout ?? DEFAULT_REQUEST_TIMEOUT_MS / 1000) * 1000;
    const path = normalizeUserPath(flags.path ?? "");
    const table = new InodeTable(await mountedFolder(host, path, timeoutMs), []);
    const files = new RemoteFiles(host, chunks, {
      pathWindowBytes: () => pool.windowBytes,
      folderOf: (node) => table.get(node.parentIno),
    });
    const listings = new FolderListings(table, host, {
      ttlMs: (flags.ttl ?? DEFAULT_TTL_SECONDS) * 1000,
      forget: (ino) => files.forget(ino),
      ...(flags.listedAtMount === undefined ? {} : { eagerEntries: flags.listedAtMount }),
    });
    const feed = await followHost(listings, host, path, flags.watch !== false, notice);
    const session = FuseSession.mount(
      mountpoint,
      table,
      (node, offset, length, signal) =>
        host.retrying(signal, () => files.readPieces(node, offset, length, signal)),
      { requestTimeoutMs: timeoutMs, listings },
    );
    await raiseKernelReadAhead(mountpoint);
    await untilUnmounted(session, mountpoint);
    feed.stop();
  } finally {
    await pool.close();
    await host.close();
    await cache.close();
    process.stderr.write(describeCounts(chunks.counts()));
  }
}

/**
 * Lists the tree and keeps it in step: through the host's change notifications where it has
 * them (`watch`), else by the listings' TTL.
 */
async function followHost(
  listings: FolderListings,
  host: MountHost,
  path: string,
  watch: boolean,
  notice: (message: string) => void,
): Promise<ChangeFeed> {
  const feed = new ChangeFeed(listings, path, notice);
  if (watch && (await feed.start(host))) return feed;
  feed.stop();
  await host.retrying(AbortSignal.timeout(LIST_TIMEOUT_MS), async () => {
    const signal = AbortSignal.timeout(LIST_TIMEOUT_MS);
    await listings.resync(await host.client(signal), signal);
  });
  return feed;
}

const LIST_TIMEOUT_MS = 10 * 60_000;

async function untilUnmounted(session: FuseSession, mountpoint: string): Promise<void> {
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
}

async function requireFolder(mountpoint: string): Promise<void> {
  const info = await stat(mountpoint).catch(() => undefined);
  if (info?.isDirectory() !== true)
    throw new TeleportError(
      ErrorCode.USAGE,
      `${mountpoint} is not a folder: mount on an existing (empty) folder`,
    );
}

/** The entry of the mounted folder, which must be a folder. */
async function mountedFolder(host: MountHost, path: string, timeoutMs: number): Promise<Entry> {
  const root = await (await host.client(AbortSignal.timeout(timeoutMs))).stat(path);
  if (root.kind !== EntryKind.DIRECTORY)
    throw new TeleportError(ErrorCode.USAGE, `"${path}" is not a folder of the share`);
  return root;
}

export interface UmountFlags {
  /** Abort the mount's connection first (a hung or dead `teleport mount`). */
  force?: boolean;
}

/**
 * Detaches a teleport mount, lazily: files open on it stay readable until closed, then its
 * `teleport mount` process exits. A mount whose process died (ENOTCONN) is cleared the same way.
 */
export async function umountCommand(mountpoint: string, flags: UmountFlags = {}): Promise<void> {
  const mount = await findMount(mountpoint);
  if (mount === undefined) throw new TeleportError(ErrorCode.USAGE, `nothing is mounted on ${mountpoint}`);
  if (mount.fstype !== TELEPORT_FSTYPE)
    throw new TeleportError(ErrorCode.USAGE, `${mountpoint} is not a teleport mount (${mount.fstype})`);
  if (flags.force === true) {
    await abortConnection(mount).catch((cause: unknown) => {
      throw new TeleportError(ErrorCode.IO, `could not abort the mount on ${mountpoint}: ${String(cause)}`);
    });
  }
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
