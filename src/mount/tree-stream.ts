/**
 * One recursive LIST streamed into the InodeTable folder by folder, while the mount answers. The
 * host walks depth first, each folder's names in order and a folder's subtree right after its
 * entry (Share.walk): a folder's listing is whole only once the stream leaves its subtree, so
 * each folder is applied then. A walker (find, ls -R, du) visits folders in that same order and
 * readdirs a folder before going into it, so it follows the stream: asked for a folder the stream
 * is inside, it waits for it; for one the stream is about to enter, it waits a little.
 */
import { type Entry, EntryKind } from "../wire/messages.js";
import type { Inode, InodeTable, TreeChanges } from "./inode-table.js";
import { parentPath } from "./inode-table.js";

/** A folder the stream is inside: the entries of its own met so far. */
interface OpenFolder {
  readonly path: string;
  readonly entries: Entry[];
}

/** A folder the stream left before the table held its inode (its parent was still open). */
interface LeftFolder {
  readonly entries: Entry[];
  /** The stream was cut inside it: the entries are some of its children, not all. */
  readonly partial: boolean;
}

/**
 * How long a walker asking for a folder the stream has yet to enter waits for it before that
 * folder is listed on its own: a walker is usually just ahead of the stream (docs/decisions.md,
 * "Mount: listing in the background").
 */
export const REACH_WAIT_MS = 100;
/**
 * How long such a walker waits for a stream that has yet to start (the mount's first waits for
 * the host's change notifications to be live): a walker starts at the top, before the stream.
 */
export const START_WAIT_MS = 1000;

export class TreeStream {
  readonly top: Inode;
  readonly #table: InodeTable;
  readonly #apply: (changes: TreeChanges) => void;
  /** The folders the stream is inside, outermost first: the top until the stream ends. */
  readonly #open: OpenFolder[];
  readonly #left = new Map<string, LeftFolder>();
  /** Asks waiting for the stream to leave a folder, and to enter one, by path. */
  readonly #leaving = new Map<string, (() => void)[]>();
  readonly #entering = new Map<string, (() => void)[]>();
  #listedAt = Number.NEGATIVE_INFINITY;
  #ended = false;
  #running = false;
  #start: () => void = () => {};
  readonly #started = new Promise<void>((resolve) => {
    this.#start = resolve;
  });

  constructor(table: InodeTable, top: Inode, apply: (changes: TreeChanges) => void) {
    this.#table = table;
    this.top = top;
    this.#apply = apply;
    this.#open = [{ path: top.entry.path, entries: [] }];
  }

  /**
   * Applies `entries` (a recursive LIST of `top`, started at `listedAt`) as the stream leaves each
   * folder; after `cap` entries the stream is cut and the folders it was inside are left to be
   * listed as visited. Folders beneath `top` this stream did not list again are marked stale.
   * On a failure the folders not finished stay as they were (asks waiting on them list them).
   */
  async run(entries: AsyncIterable<Entry>, listedAt: number, cap: number): Promise<void> {
    this.#listedAt = listedAt;
    this.#running = true;
    this.#start();
    try {
      let count = 0;
      let cut = false;
      for await (const entry of entries) {
        this.#take(entry);
        if (++count >= cap) {
          cut = true;
          break;
        }
      }
      for (let folder = this.#open.pop(); folder !== undefined; folder = this.#open.pop())
        this.#leave(folder, cut);
      if (this.#table.get(this.top.ino) === this.top) this.#table.markStaleListedBefore(this.top, listedAt);
    } finally {
      this.#end();
    }
  }

  /**
   * Settles once the stream has gone past `folder` (listed it, or ended without); undefined if
   * it is not inside `folder` nor about to enter it. A folder the stream is to enter later is
   * waited for only `REACH_WAIT_MS`.
   */
  passing(folder: Inode): Promise<void> | undefined {
    if (this.#ended) return undefined;
    const { path } = folder.entry;
    const left = this.#left.get(path);
    if (left !== undefined) {
      // Left before its inode was made (by a listing of its parent of its own): applied now.
      this.#left.delete(path);
      this.#applyLeft(folder, left);
      return Promise.resolve();
    }
    if (this.#open.some((open) => open.path === path)) return this.#waitFor(this.#leaving, path);
    if (!this.#open.some((open) => open.path === parentPath(path))) return undefined;
    if (!this.#running) return this.#within(this.#started, START_WAIT_MS, folder);
    return this.#within(this.#waitFor(this.#entering, path), REACH_WAIT_MS, folder);
  }

  /** Once `event` comes, what `passing` says then; settled after `ms` if it has not come. */
  #within(event: Promise<void>, ms: number, folder: Inode): Promise<void> {
    return new Promise<void>((resolve) => {
      let waited = false;
      const timer = setTimeout(() => {
        waited = true;
        resolve();
      }, ms);
      void event.then(() => {
        clearTimeout(timer);
        if (!waited) resolve(this.passing(folder));
      });
    });
  }

  /** One entry of the stream: the folders it is not beneath are finished. */
  #take(entry: Entry): void {
    if (entry.path === this.top.entry.path) return; // the walk's first entry is its top
    const parent = parentPath(entry.path);
    let depth = this.#open.length - 1;
    while (depth >= 0 && this.#open[depth]?.path !== parent) depth--;
    const holder = this.#open[depth];
    if (holder === undefined) return; // not beneath the folders open: not the walk's order
    while (this.#open.length - 1 > depth) {
      const finished = this.#open.pop();
      if (finished !== undefined) this.#leave(finished, false);
    }
    holder.entries.push(entry);
    if (entry.kind === EntryKind.DIRECTORY) {
      this.#open.push({ path: entry.path, entries: [] });
      this.#wake(this.#entering, entry.path);
    }
  }

  /** The stream has left `folder`: its listing applied, or kept until the table holds its inode. */
  #leave(folder: OpenFolder, partial: boolean): void {
    const node = this.#table.at(folder.path);
    const left = { entries: folder.entries, partial };
    if (node?.children === undefined) this.#left.set(folder.path, left);
    else this.#applyLeft(node, left);
  }

  #applyLeft(node: Inode, left: LeftFolder): void {
    // A folder listed on its own since this stream began has a listing at least as new: kept.
    if (node.listedAt === undefined || node.listedAt < this.#listedAt) {
      this.#apply(this.#table.replaceChildren(node, left.entries, this.#listedAt));
      if (left.partial) node.listedAt = undefined;
    }
    this.#wake(this.#leaving, node.entry.path);
    for (const child of node.children?.values() ?? []) {
      const childLeft = child.children === undefined ? undefined : this.#left.get(child.entry.path);
      if (childLeft === undefined) continue;
      this.#left.delete(child.entry.path);
      this.#applyLeft(child, childLeft);
    }
  }

  /** Every ask let go (they list what they wait for themselves); what was not applied dropped. */
  #end(): void {
    this.#ended = true;
    this.#start();
    this.#left.clear();
    for (const waiters of [...this.#leaving.values(), ...this.#entering.values()])
      for (const wake of waiters) wake();
    this.#leaving.clear();
    this.#entering.clear();
  }

  #waitFor(waiting: Map<string, (() => void)[]>, path: string): Promise<void> {
    return new Promise<void>((resolve) => {
      const waiters = waiting.get(path);
      if (waiters === undefined) waiting.set(path, [resolve]);
      else waiters.push(resolve);
    });
  }

  #wake(waiting: Map<string, (() => void)[]>, path: string): void {
    const waiters = waiting.get(path);
    if (waiters === undefined) return;
    waiting.delete(path);
    for (const wake of waiters) wake();
  }
}
