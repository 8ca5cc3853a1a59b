/**
 * Keeps the mount's InodeTable in step with the host, folder by folder: a folder's listing is
 * trusted for a TTL (forever while the host's change notifications are live), listed again when
 * it is older or the host said it changed, and every difference is told to the kernel (its
 * entry, attribute, page and directory caches) and to the file readers (chunk lists).
 */
import type { TeleportClient } from "../client/client.js";
import { topmost } from "../client/watch.js";
import { ErrorCode, isTeleportError } from "../errors.js";
import type { Entry } from "../wire/messages.js";
import type { Inode, InodeTable, TreeChanges } from "./inode-table.js";
import { parentPath } from "./inode-table.js";
import type { MountHost } from "./mount-host.js";
import { TreeStream } from "./tree-stream.js";

/** The kernel's caches of the mount, as FuseSession drops them. */
export interface KernelCache {
  invalEntry(parent: number, name: string): void;
  invalInode(ino: number): void;
}

/** Told of inodes no longer in the tree: what was kept for them (chunk lists) can go. */
export type ForgetInode = (ino: number) => void;

/** A LIST of one folder still unanswered by then is given up (its askers have their own deadlines). */
const LIST_TIMEOUT_MS = 60_000;

/** Folders listed ahead of a reader at once (docs/decisions.md, "Mount: listings"). */
const LIST_AHEAD_CONCURRENCY = 32;
/** Entries listed at mount and on a resync unless told otherwise: about 60 MB of tree. */
export const DEFAULT_EAGER_ENTRIES = 100_000;

export interface FolderListingsOptions {
  /** How long a listing is trusted without the host's change notifications (ms). */
  ttlMs: number;
  /**
   * Entries a resync lists in one recursive LIST (the mount's first listing is one); folders
   * beyond are listed as they are visited, their subfolders ahead of the reader.
   */
  eagerEntries?: number;
  forget?: ForgetInode;
  clock?: () => number;
}

export class FolderListings {
  readonly #table: InodeTable;
  readonly #host: MountHost;
  readonly #ttlMs: number;
  readonly #forget: ForgetInode;
  readonly #clock: () => number;
  readonly #eagerEntries: number;
  /** Folders to list ahead of a reader, and how many such listings are under way. */
  readonly #ahead: Inode[] = [];
  #aheadRunning = 0;
  /** Listings under way, by folder inode: concurrent asks share one LIST. */
  readonly #listing = new Map<number, Promise<void>>();
  /** Recursive LISTs being applied, and the mount's first one before it starts. */
  readonly #streams = new Set<TreeStream>();
  #expected: TreeStream | undefined;
  #kernel: KernelCache | undefined;
  /** The host's change notifications are live: listings stay trusted until one says otherwise. */
  #watched = false;

  constructor(table: InodeTable, host: MountHost, options: FolderListingsOptions) {
    this.#table = table;
    this.#host = host;
    this.#ttlMs = options.ttlMs;
    this.#forget = options.forget ?? (() => {});
    this.#clock = options.clock ?? Date.now;
    this.#eagerEntries = options.eagerEntries ?? DEFAULT_EAGER_ENTRIES;
  }

  /** Where differences are told once mounted. */
  set kernel(cache: KernelCache) {
    this.#kernel = cache;
  }

  /** Whether the host's change notifications are live (false: listings age by the TTL). */
  set watched(live: boolean) {
    this.#watched = live;
  }

  get watched(): boolean {
    return this.#watched;
  }

  /** How long the kernel may keep names and attributes without asking (s). */
  get kernelTtlSeconds(): number {
    return this.#watched ? 60 : this.#ttlMs / 1000;
  }

  /**
   * Whether `folder`'s children must be listed before they are answered: never listed, or
   * older than trusted. With the host unreachable, a folder listed before is answered as it was.
   */
  stale(folder: Inode): boolean {
    const { listedAt } = folder;
    if (folder.children === undefined) return false;
    if (listedAt === undefined) return true;
    const trusted = this.#watched ? Number.POSITIVE_INFINITY : this.#ttlMs;
    return this.#clock() - listedAt >= trusted && this.#host.connected;
  }

  /**
   * Lists `folder` again; the kernel hears of every difference. Concurrent asks share one LIST,
   * bounded by its own deadline (not an asker's: one reader interrupted fails no other); each
   * asker waits for it only as long as its own request may. A folder never listed that a
   * recursive LIST under way is inside (or about to enter) waits for that LIST instead.
   */
  list(folder: Inode): Promise<void> {
    return this.#listing.get(folder.ino) ?? this.#startListing(folder, () => this.#listFolder(folder));
  }

  async #listFolder(folder: Inode): Promise<void> {
    const passing = folder.listedAt === undefined ? this.#streamPassing(folder) : undefined;
    if (passing !== undefined) {
      await settledWithin(passing, LIST_TIMEOUT_MS);
      if (!this.stale(folder)) return;
      // The stream failed, was cut, or was not there in time: listed on its own.
    }
    await this.#relist(folder, AbortSignal.timeout(LIST_TIMEOUT_MS));
  }

  #streamPassing(folder: Inode): Promise<void> | undefined {
    for (const stream of this.#streams) {
      const passing = stream.passing(folder);
      if (passing !== undefined) return passing;
    }
    return this.#expected?.passing(folder);
  }

  /** A LIST of `folder` that starts after any under way: a change the host reported is in it. */
  #listAfterChange(folder: Inode): Promise<void> {
    const underway = this.#listing.get(folder.ino);
    return this.#startListing(folder, async () => {
      await underway?.catch(() => {});
      await this.#relist(folder, AbortSignal.timeout(LIST_TIMEOUT_MS));
    });
  }

  #startListing(folder: Inode, work: () => Promise<void>): Promise<void> {
    const listing = work();
    this.#listing.set(folder.ino, listing);
    const settled = () => {
      if (this.#listing.get(folder.ino) === listing) this.#listing.delete(folder.ino);
    };
    listing.then(settled, settled);
    return listing;
  }

  /**
   * The host changed these paths (a folder: everything beneath it too): their folders are listed
   * again at once, a changed folder with all beneath it, so the kernel hears of every
   * difference before anyone looks (its caches last 60 s while changes are followed).
   */
  changed(paths: readonly string[]): void {
    const root = this.#table.root;
    for (const path of topmost([...paths])) {
      const node = this.#table.at(path);
      const parent = path === root.entry.path ? undefined : this.#table.at(parentPath(path));
      if (parent?.listedAt !== undefined) {
        this.#table.markStale(parent);
        this.#listAfterChange(parent).catch(() => {});
      }
      if (node?.children !== undefined && node.listedAt !== undefined) {
        this.#table.markSubtreeStale(node);
        const signal = AbortSignal.timeout(LIST_TIMEOUT_MS);
        this.#host
          .retrying(signal, async () => this.#listTree(node, await this.#host.client(signal), signal))
          .catch(() => {});
      }
    }
  }

  /**
   * Everything listed again (at mount, on a reconnection, or when the host lost track of its
   * changes), applied folder by folder as the LIST streams in; resolves when it has.
   */
  resync(client: TeleportClient, signal: AbortSignal): Promise<void> {
    return this.#listTree(this.#table.root, client, signal);
  }

  /**
   * A resync is about to start (the mount's first, once the host's change notifications are
   * live): until it does, a walker asking for a folder waits for it briefly, as it would for a
   * LIST under way, rather than have folders listed one by one ahead of it.
   */
  expectResync(): void {
    this.#expected ??= this.#newStream(this.#table.root);
  }

  #newStream(top: Inode): TreeStream {
    return new TreeStream(this.#table, top, (changes) => this.#apply(changes));
  }

  /**
   * `top` and all beneath it in one recursive LIST, cut after `eagerEntries`: folders it did not
   * finish are listed when visited.
   */
  async #listTree(top: Inode, client: TeleportClient, signal: AbortSignal): Promise<void> {
    const expected = this.#expected;
    const stream = top === this.#table.root && expected !== undefined ? expected : this.#newStream(top);
    if (stream === expected) this.#expected = undefined;
    this.#streams.add(stream);
    try {
      const entries = client.list(top.entry.path, { recursive: true, signal });
      await stream.run(entries, this.#clock(), this.#eagerEntries);
    } finally {
      this.#streams.delete(stream);
    }
  }

  /** Lists `folder`'s never-listed subfolders ahead of a reader walking down (`find`, `ls -R`). */
  #listAhead(folder: Inode): void {
    for (const child of folder.children?.values() ?? [])
      if (child.children !== undefined && child.listedAt === undefined) this.#ahead.push(child);
    this.#pumpAhead();
  }

  #pumpAhead(): void {
    while (this.#aheadRunning < LIST_AHEAD_CONCURRENCY) {
      const next = this.#ahead.shift();
      if (next === undefined) return;
      if (this.#table.get(next.ino) !== next || next.listedAt !== undefined) continue;
      this.#aheadRunning++;
      this.list(next)
        .catch(() => {})
        .finally(() => {
          this.#aheadRunning--;
          this.#pumpAhead();
        });
    }
  }

  async #relist(folder: Inode, signal: AbortSignal): Promise<void> {
    const listedAt = this.#clock();
    const entries = await this.#host.retrying(signal, async () => {
      const client = await this.#host.client(signal);
      const children: Entry[] = [];
      try {
        for await (const entry of client.list(folder.entry.path, { signal })) children.push(entry);
      } catch (err) {
        if (!isTeleportError(err, ErrorCode.NOT_FOUND)) throw err;
        // Gone from the host: empty until its parent's listing drops it.
        const parent = this.#table.get(folder.parentIno);
        if (parent !== undefined && parent !== folder) this.#table.markStale(parent);
      }
      return children;
    });
    // The folder itself may have gone meanwhile (its parent listed again): nothing to apply.
    if (this.#table.get(folder.ino) !== folder) return;
    const first = folder.listedAt === undefined;
    this.#apply(this.#table.replaceChildren(folder, entries, listedAt));
    // A recursive LIST under way lists what is beneath; listings ahead would race it.
    if (first && this.#streams.size === 0 && this.#expected === undefined) this.#listAhead(folder);
  }

  #apply(changes: TreeChanges): void {
    for (const ino of changes.dropped) this.#forget(ino);
    const kernel = this.#kernel;
    if (kernel === undefined) return;
    for (const { parent, name } of changes.names) kernel.invalEntry(parent, name);
    for (const ino of changes.inodes) kernel.invalInode(ino);
  }
}

/** Resolves when `work` does, or after `ms` (`work` never rejects). */
function settledWithin(work: Promise<void>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    void work.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
