/**
 * Small files of a folder, listed and fetched in batches when the first of them is read: `grep -r`
 * or `cat *` over a tree then pays a round trip or two per folder, not per file. One MANIFEST of
 * the folder, filtered to the chosen files (Feature.FILTERS), lists them all; the host reads each
 * small file whole to hash it and keeps its bytes a moment (serve/recent-chunks.ts), so the one
 * GET_CHUNKS that follows is answered from memory.
 *
 * Triggered by a read, not by readdir: `find` or `ls -lR` read no file, and would otherwise fetch
 * every small file of the tree.
 */
import { setMaxListeners } from "node:events";
import { ErrorCode, isTeleportError } from "../errors.js";
import { EntryKind, FilterKind, type FilterRule } from "../wire/messages.js";
import type { ChunkListing } from "./chunk-listing.js";
import type { ChunkSource } from "./chunk-source.js";
import { type FileListings, LISTING_TIMEOUT_MS, ListingFeed } from "./file-listings.js";
import type { Inode } from "./inode-table.js";
import type { MountHost } from "./mount-host.js";

export interface FolderPrefetchOptions {
  /** Files at most this large are prefetched: the host reads such files whole when it lists them. */
  smallFileBytes: number;
  /** Files per batch (one MANIFEST with a filter rule each, and one GET_CHUNKS). */
  batchFiles: number;
  /** Bytes per batch. */
  batchBytes: number;
  /** Folders remembered as prefetched; one forgotten is prefetched again when read again. */
  folders: number;
  /** Folders of a tree walk prefetched ahead of the walker. */
  lookaheadFolders: number;
}

export const DEFAULT_FOLDER_PREFETCH: FolderPrefetchOptions = {
  smallFileBytes: 512 << 10,
  batchFiles: 255, // one rule per file and one excluding the rest: MAX_FILTER_RULES is 256
  batchBytes: 16 << 20,
  folders: 16_384,
  lookaheadFolders: 8,
};

/** Listeners on a batch's signal besides one per file (the manifest's). */
const LISTENERS_BESIDE_FILES = 10;

/** Names a filter rule can hold as they are: no glob character to escape. */
const PLAIN_NAME = /^[\w.,+=~%#@ -]+$/;

export class FolderPrefetch {
  readonly #host: MountHost;
  readonly #listings: FileListings;
  readonly #chunks: ChunkSource;
  readonly #options: FolderPrefetchOptions;
  /** Folders prefetched, by inode, least recent first. */
  readonly #done = new Set<number>();
  /** Folders a read has reached, by inode, least recent first. */
  readonly #reached = new Set<number>();
  /** The host cannot filter a manifest: nothing is prefetched. */
  #unsupported = false;

  constructor(
    host: MountHost,
    listings: FileListings,
    chunks: ChunkSource,
    options: FolderPrefetchOptions = DEFAULT_FOLDER_PREFETCH,
  ) {
    this.#host = host;
    this.#listings = listings;
    this.#chunks = chunks;
    this.#options = options;
  }

  /**
   * A file of `folder` (in `parent`) is read. The first time, its small files are prefetched;
   * and once reads have reached more than one folder (a tree walker: `grep -r`, `tar c`), the
   * next folders of the walk too, in readdir order: its subfolders, then the folders after it
   * in its parent, `lookaheadFolders` at most. Their round trips then overlap the walker's reads.
   */
  reached(folder: Inode, parent: Inode | undefined): void {
    if (this.#unsupported || this.#reached.has(folder.ino)) return;
    remember(this.#reached, folder.ino, this.#options.folders);
    this.#prefetchFolder(folder);
    if (this.#reached.size < 2) return;
    let ahead = 0;
    for (const next of walkAhead(folder, parent)) {
      if (ahead >= this.#options.lookaheadFolders) break;
      if (this.#done.has(next.ino)) continue;
      this.#prefetchFolder(next);
      ahead++;
    }
  }

  /** Lists and fetches the folder's small files not listed yet, once. */
  #prefetchFolder(folder: Inode): void {
    if (folder.children === undefined || this.#done.has(folder.ino)) return;
    remember(this.#done, folder.ino, this.#options.folders);
    const name = folder.entry.path.slice(folder.entry.path.lastIndexOf("/") + 1);
    if (!PLAIN_NAME.test(name) && folder.entry.path !== "") return;
    for (const batch of this.#batches(folder.children)) void this.#prefetch(folder, batch);
  }

  /** The folder's small files not listed yet, in batches; none for a folder with just one. */
  #batches(children: Map<string, Inode>): Inode[][] {
    const { smallFileBytes, batchFiles, batchBytes } = this.#options;
    const batches: Inode[][] = [];
    let batch: Inode[] = [];
    let bytes = 0;
    for (const [name, node] of children) {
      const { kind, size } = node.entry;
      if (kind !== EntryKind.FILE || size === 0 || size > smallFileBytes || !PLAIN_NAME.test(name)) continue;
      if (this.#listings.has(node)) continue;
      if (batch.length >= batchFiles || bytes + size > batchBytes) {
        batches.push(batch);
        batch = [];
        bytes = 0;
      }
      batch.push(node);
      bytes += size;
    }
    if (batch.length > 0) batches.push(batch);
    return batches.length === 1 && batches[0]?.length === 1 ? [] : batches;
  }

  /** One MANIFEST listing `files`, then one fetch of all their chunks. */
  async #prefetch(folder: Inode, files: Inode[]): Promise<void> {
    const listed = files.map((node) => [node, this.#listings.adopt(node)] as const);
    const feed = new ListingFeed(listed);
    const signal = AbortSignal.timeout(LISTING_TIMEOUT_MS);
    setMaxListeners(files.length + LISTENERS_BESIDE_FILES, signal); // each file's fetch listens to it
    let fetched = false;
    try {
      const client = await this.#host.client(signal);
      const rules = filterRules(folder.entry.path, files);
      for await (const event of client.manifest(folder.entry.path, signal, rules)) {
        if (!feed.accept(event)) continue;
        // Every file listed: fetch now, not after the manifest's end is acknowledged.
        fetched = true;
        this.#fetch(listed, signal);
        break;
      }
    } catch (err) {
      if (isTeleportError(err, ErrorCode.FILTERS_UNSUPPORTED)) this.#unsupported = true;
    }
    // Files the manifest did not describe are asked for one by one when read.
    feed.fail(new Error("not listed by the folder's manifest"));
    if (!fetched) this.#fetch(listed, signal);
  }

  /** All the listed files' chunks, asked in one turn: the control fetcher sends one request. */
  #fetch(listed: readonly (readonly [Inode, ChunkListing])[], signal: AbortSignal): void {
    for (const [node, listing] of listed) {
      if (!listing.complete) continue;
      this.#chunks.prefetch(node.entry.path, listing.covering(0, node.entry.size), signal);
    }
  }
}

/** The chosen files of `folder` and nothing else (rules are relative to the folder's parent). */
function filterRules(folder: string, files: readonly Inode[]): FilterRule[] {
  const prefix = folder === "" ? "/" : `/${folder.slice(folder.lastIndexOf("/") + 1)}/`;
  const rules: FilterRule[] = files.map((node) => ({
    kind: FilterKind.INCLUDE,
    pattern: prefix + node.entry.path.slice(node.entry.path.lastIndexOf("/") + 1),
  }));
  rules.push({ kind: FilterKind.EXCLUDE, pattern: `${prefix}*` });
  return rules;
}

/** `inode` added to `set` as its most recent, the least recent dropped past `bound`. */
function remember(set: Set<number>, inode: number, bound: number): void {
  set.add(inode);
  if (set.size <= bound) return;
  const oldest = set.values().next();
  if (oldest.done !== true) set.delete(oldest.value);
}

/** The folders a depth-first walk reaches after `folder`: its subfolders, then its later siblings. */
function* walkAhead(folder: Inode, parent: Inode | undefined): Generator<Inode> {
  for (const child of folder.children?.values() ?? []) if (child.children !== undefined) yield child;
  if (parent === undefined || parent === folder) return;
  let after = false;
  for (const sibling of parent.children?.values() ?? []) {
    if (after && sibling.children !== undefined) yield sibling;
    if (sibling === folder) after = true;
  }
}
