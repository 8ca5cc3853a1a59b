/**
 * What a mount keeps and finds on this machine: its persistent chunk store (by default in
 * TELEPORT_HOME/mount-cache, shared by every mount of this user) and the chunk index's local
 * copies. Opened before mounting, closed after: the chunks still being written are waited for.
 */
import { statfsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { ErrorCode, TeleportError } from "../errors.js";
import { ChunkIndex } from "../store/chunk-index.js";
import { teleportHome } from "../store/teleport-home.js";
import type { ChunkCounts } from "./chunk-source.js";
import { ChunkStore } from "./chunk-store.js";
import { LocalChunks } from "./local-chunks.js";

/** The store's bound unless --cache-size says: 10 GiB, or half the free space if that is less. */
export const DEFAULT_CACHE_CAPACITY = 10 * 1024 ** 3;
/** Never less than this by default, however full the disk: a mount still caches a working set. */
const MIN_DEFAULT_CAPACITY = 256 * 1024 ** 2;

export interface MountCacheOptions {
  mountpoint: string;
  /** The store's folder (default TELEPORT_HOME/mount-cache). */
  folder?: string;
  /** The store's bound in bytes (default: see DEFAULT_CACHE_CAPACITY). */
  capacity?: number;
}

export class MountCache {
  readonly store: ChunkStore;
  /** Undefined when the chunk index cannot be opened: local copies are an optimisation. */
  readonly local: LocalChunks | undefined;
  readonly #index: ChunkIndex | undefined;

  private constructor(store: ChunkStore, index: ChunkIndex | undefined, mountpoint: string) {
    this.store = store;
    this.#index = index;
    this.local = index === undefined ? undefined : new LocalChunks(index, mountpoint);
  }

  static open(options: MountCacheOptions): MountCache {
    const folder = resolve(options.folder ?? join(teleportHome(), "mount-cache"));
    const mountpoint = resolve(options.mountpoint);
    // The store's files would be written through the mount itself, which waits on this process.
    if (folder === mountpoint || folder.startsWith(`${mountpoint}/`))
      throw new TeleportError(
        ErrorCode.USAGE,
        `the mount cache ${folder} is inside the mountpoint; give --cache-dir another folder`,
      );
    const store = ChunkStore.open(folder, options.capacity ?? defaultCapacity(folder));
    let index: ChunkIndex | undefined;
    try {
      index = ChunkIndex.open(teleportHome());
    } catch {
      index = undefined;
    }
    return new MountCache(store, index, options.mountpoint);
  }

  async close(): Promise<void> {
    try {
      await this.store.close();
    } finally {
      this.#index?.close();
    }
  }
}

/** 10 GiB, or half the free space of the store's file system when that is less (at least 256 MiB). */
function defaultCapacity(folder: string): number {
  for (let at = folder; ; at = dirname(at)) {
    try {
      const { bavail, bsize } = statfsSync(at);
      return Math.min(
        DEFAULT_CACHE_CAPACITY,
        Math.max(MIN_DEFAULT_CAPACITY, Math.floor((bavail * bsize) / 2)),
      );
    } catch {
      if (at === dirname(at)) return DEFAULT_CACHE_CAPACITY; // the folder is made by the store
    }
  }
}

/** One line for the end of a mount: where the chunks it served came from (memory hits aside). */
export function describeCounts(counts: ChunkCounts): string {
  return (
    `teleport: chunks from the host: ${counts.fetchedChunks} (${counts.fetchedBytes} bytes), ` +
    `from the cache: ${counts.storeChunks} (${counts.storeBytes} bytes), ` +
    `from local files: ${counts.localChunks} (${counts.localBytes} bytes)\n`
  );
}
