/**
 * `teleport mount LINK MOUNTPOINT`: the share as a read-only folder (FUSE), listed once from the
 * host, its bytes fetched by verified chunks as they are read; `teleport umount MOUNTPOINT`.
 */
import { execFile } from "node:child_process";
import { closeSync } from "node:fs";
import { promisify } from "node:util";
import { ErrorCode, TeleportError } from "../errors.js";
import { loadFuse } from "../mount/binding.js";
import { ChangeFeed } from "../mount/change-feed.js";
import { controlFetcher, routedFetcher } from "../mount/chunk-fetcher.js";
import { ChunkSource } from "../mount/chunk-source.js";
import { FolderListings } from "../mount/folder-listings.js";
import { DEFAULT_REQUEST_TIMEOUT_MS, FuseSession, openMountpoint } from "../mount/fuse-session.js";
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
  const mountpointFd = openMountpoint(mountpoint);
  try {
    await mountOn(link, mountpoint, mountpointFd, flags);
  } finally {
    closeSync(mountpointFd);
  }
}

async function mountOn(
  link: string,
  mountpoint: string,
  mountpointFd: number,
  flags: MountFlags,
): Promise<void> {
  const notice = (message: string) => process.stderr.write(`teleport: ${message}\n`);
  const cache = MountCache.open({ mountpoint, folder: flags.cacheDir, capacity: flags.cacheSize });
  const host = await MountHost.forLink(link, notice).catch(async (err) => {
    await cache.close();
    throw err;
  });
  const pool = new PoolFetcher(host, cache.store);
  const fetcher = routedFetcher(controlFetcher(host), pool.fetch, POOL_FETCH_BYTES);
  const chunks = new ChunkSource(fetcher, { store: cache.store, local: cache.local });
  const unmounted = new AbortController();
  let stopSignals: (() => void) | undefined;
  try {
    const timeoutMs = (flags.timeout ?? DEFAULT_REQUEST_TIMEOUT_MS / 1000) * 1000;
    const path = normalizeUserPath(flags.path ?? "");
    const table = await listedRoot(host, path, timeoutMs);
    const files = new RemoteFiles(host, chunks, {
      pathWindowBytes: () => pool.windowBytes,
      folderOf: (node) => table.get(node.parentIno),
    });
    const listings = new FolderListings(table, host, {
      ttlMs: (flags.ttl ?? DEFAULT_TTL_SECONDS) * 1000,
      forget: (ino) => files.forget(ino),
      ...(flags.listedAtMount === undefined ? {} : { eagerEntries: flags.listedAtMount }),
    });
    const session = FuseSession.mount(
      mountpoint,
      table,
      (node, offset, length, signal) =>
        host.retrying(signal, () => files.readPieces(node, offset, length, signal)),
      { requestTimeoutMs: timeoutMs, listings, mountpointFd },
    );
    // Before any request reaches JS (they come through the event loop): a walker finds the
    // listing expected.
    const feed = followHost(
      listings,
      host,
      { path, watch: flags.watch !== false, unmounted: unmounted.signal },
      notice,
    );
    await raiseKernelReadAhead(mountpoint);
    stopSignals = onStopSignals(() => session.unmount(), notice);
    process.stderr.write(
      `teleport: mounted at ${mountpoint} (read-only); Ctrl-C or \`teleport umount ${mountpoint}\` unmounts\n`,
    );
    await session.closed;
    feed.stop();
  } finally {
    unmounted.abort();
    await pool.close();
    await host.close();
    await cache.close();
    stopSignals?.();
    process.stderr.write(describeCounts(chunks.counts()));
  }
}

/**
 * Lists the tree in the background, once the host's change notifications are live where it has
 * them (`watch`), and keeps it in step: through those notifications, else by the listings' TTL.
 * Folders a listing that failed did not reach are listed as they are visited.
 */
function followHost(
  listings: FolderListings,
  host: MountHost,
  { path, watch, unmounted }: { path: string; watch: boolean; unmounted: AbortSignal },
  notice: (message: string) => void,
): ChangeFeed {
  const feed = new ChangeFeed(listings, path, notice);
  listings.expectResync();
  const watching = watch ? feed.start(host) : Promise.resolve(false);
  watching
    .then(async (live) => {
      if (live) return;
      feed.stop();
      const signal = AbortSignal.any([AbortSignal.timeout(LIST_TIMEOUT_MS), unmounted]);
      await host.retrying(signal, async () => listings.resync(await host.client(signal), signal));
    })
    .catch((err: unknown) => {
      if (unmounted.aborted) return;
      const reason = err instanceof Error ? err.message : String(err);
      notice(`could not list the share at once (${reason}); folders are listed as they are visited`);
    });
  return feed;
}

const LIST_TIMEOUT_MS = 10 * 60_000;

/**
 * SIGINT and SIGTERM unmount. They stay handled until the cache is closed: a signal that comes
 * while the mount finishes (a second Ctrl-C, a service manager's stop after `teleport umount`)
 * must not end the process before the chunks it read are recorded. A third signal ends it at
 * once (the cache is crash-safe: it loses only what was still being written). Returns the
 * function that stops handling them.
 */
function onStopSignals(unmount: () => void, notice: (message: string) => void): () => void {
  let signals = 0;
  const stop = () => {
    signals += 1;
    if (signals === 1) unmount();
    else if (signals === 2) notice("finishing: recording the chunk cache (again to quit at once)");
    else process.exit(130);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  return () => {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  };
}

/**
 * The tree with the mounted folder (which must be a folder) and its entries listed: the mount
 * needs no more to appear. Its entry and its listing are asked at once: one round trip.
 */
async function listedRoot(host: MountHost, path: string, timeoutMs: number): Promise<InodeTable> {
  const signal = AbortSignal.timeout(timeoutMs);
  const client = await host.client(signal);
  const listedAt = Date.now();
  const stat = client.stat(path, signal);
  const listing = entriesOf(client.list(path, { signal }));
  listing.catch(() => {}); // a file or a missing path: the stat says so
  const root = await stat;
  if (root.kind !== EntryKind.DIRECTORY)
    throw new TeleportError(ErrorCode.USAGE, `"${path}" is not a folder of the share`);
  const table = new InodeTable(root, [], { listedAt });
  // Its own entries only: the folders among them are still to be listed.
  table.replaceChildren(table.root, await listing, listedAt);
  return table;
}

async function entriesOf(listing: AsyncIterable<Entry>): Promise<Entry[]> {
  const entries: Entry[] = [];
  for await (const entry of listing) entries.push(entry);
  return entries;
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
