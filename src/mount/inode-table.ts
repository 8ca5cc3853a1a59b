/**
 * The mounted tree: inode numbers for the entries of the host's listings, folder by folder, and
 * the attributes the kernel is answered with. A path keeps its inode while its entry stays the
 * same; a new path, or a file whose content changed (size, mtime, kind, link target), gets a
 * new number, so pages the kernel holds for the old file are never taken for the new one.
 * Numbers are never reused while mounted.
 */
import { type Entry, EntryKind } from "../wire/messages.js";
import { ATTR_FIELDS } from "./binding.js";

export const ROOT_INO = 1;

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

export interface Inode {
  readonly ino: number;
  /** The host's entry; replaced in place when only its mode or a folder's mtime changed. */
  entry: Entry;
  /** The folder holding it (the root's is the root). */
  readonly parentIno: number;
  /** Names to children, for folders; undefined otherwise. */
  readonly children: Map<string, Inode> | undefined;
  /**
   * When the folder's children were listed (ms, the table's clock); undefined: never (no
   * children known yet, as for a node made without it); -Infinity: known, but the host said
   * they changed.
   */
  listedAt?: number | undefined;
}

/** What one folder's new listing changed, for the kernel's caches and the file readers. */
export interface TreeChanges {
  /** Names whose kernel entries are wrong now (added, replaced, removed), by folder inode. */
  names: { parent: number; name: string }[];
  /** Inodes whose attributes or cached pages the kernel must drop (the folder itself among them). */
  inodes: number[];
  /** Inodes no longer in the tree (replaced or removed, with everything beneath them). */
  dropped: number[];
}

export interface InodeTableOptions {
  owner?: { uid: number; gid: number };
  /** When `entries` were listed (ms, the clock listings are aged by); default Date.now(). */
  listedAt?: number;
}

/** Inodes that left the tree kept for the kernel's getattr on files still open (newest kept). */
const RETIRED_INODES = 4096;

export class InodeTable {
  readonly #byIno = new Map<number, Inode>();
  /** Inodes no longer in the tree, by number, oldest first: an fstat on an open one still answers. */
  readonly #retired = new Map<number, Inode>();
  readonly #byPath = new Map<string, Inode>();
  readonly #uid: number;
  readonly #gid: number;
  #nextIno = ROOT_INO;

  /**
   * `root` is the mounted folder's entry; paths in `entries` are relative to the share. Folders
   * whose children `entries` holds (the root, and every folder of a recursive listing) are
   * listed as of `listedAt`; entries whose folder is missing are left out.
   */
  constructor(root: Entry, entries: Iterable<Entry>, options: InodeTableOptions = {}) {
    const owner = options.owner ?? currentUser();
    this.#uid = owner.uid;
    this.#gid = owner.gid;
    const rootNode = this.#add(root, ROOT_INO);
    this.merge(entries, options.listedAt ?? Date.now(), rootNode);
  }

  get root(): Inode {
    const root = this.#byIno.get(ROOT_INO);
    if (root === undefined) throw new Error("the inode table has no root");
    return root;
  }

  get(ino: number): Inode | undefined {
    return this.#byIno.get(ino);
  }

  /** An inode that left the tree not long ago (its file changed or went on the host). */
  retired(ino: number): Inode | undefined {
    return this.#retired.get(ino);
  }

  /** The node at a share path, if the tree holds it. */
  at(path: string): Inode | undefined {
    return this.#byPath.get(path);
  }

  lookup(parent: number, name: string): Inode | undefined {
    return this.#byIno.get(parent)?.children?.get(name);
  }

  /** Inodes in the tree (memory is proportional to it). */
  get size(): number {
    return this.#byIno.size;
  }

  /** The folder's children are to be listed again before they are trusted. */
  markStale(folder: Inode): void {
    if (folder.children !== undefined && folder.listedAt !== undefined)
      folder.listedAt = Number.NEGATIVE_INFINITY;
  }

  /** Every listed folder beneath `folder` (itself included) marked stale. */
  markSubtreeStale(folder: Inode): void {
    this.markStale(folder);
    for (const child of folder.children?.values() ?? []) if (child.children) this.markSubtreeStale(child);
  }

  /** Every folder beneath `folder` (itself included) listed before `time` marked stale. */
  markStaleListedBefore(folder: Inode, time: number): void {
    if (folder.listedAt !== undefined && folder.listedAt < time) this.markStale(folder);
    for (const child of folder.children?.values() ?? [])
      if (child.children) this.markStaleListedBefore(child, time);
  }

  /**
   * A recursive listing (paths beneath `top`, any order) merged folder by folder, parents first:
   * each listed folder's children become exactly what `entries` holds for it. Folders named in
   * `partial` (a listing cut short) get the children it holds but stay to be listed.
   */
  merge(
    entries: Iterable<Entry>,
    listedAt: number,
    top: Inode = this.root,
    partial: ReadonlySet<string> = new Set(),
  ): TreeChanges {
    const byFolder = new Map<string, Entry[]>([[top.entry.path, []]]);
    for (const entry of entries) {
      if (entry.path === top.entry.path) continue;
      // A recursive listing lists every folder in it, the empty ones too.
      if (entry.kind === EntryKind.DIRECTORY && !byFolder.has(entry.path)) byFolder.set(entry.path, []);
      const folder = parentPath(entry.path);
      const group = byFolder.get(folder);
      if (group === undefined) byFolder.set(folder, [entry]);
      else group.push(entry);
    }
    const folders = [...byFolder.keys()].sort((a, b) => depth(a) - depth(b));
    const changes: TreeChanges = { names: [], inodes: [], dropped: [] };
    for (const path of folders) {
      const folder = this.#byPath.get(path);
      if (folder?.children === undefined) continue;
      const changed = this.replaceChildren(folder, byFolder.get(path) ?? [], listedAt);
      if (partial.has(path)) folder.listedAt = undefined;
      changes.names.push(...changed.names);
      changes.inodes.push(...changed.inodes);
      changes.dropped.push(...changed.dropped);
    }
    return changes;
  }

  /** The folder's children become `entries` (its listing as of `listedAt`); says what changed. */
  replaceChildren(folder: Inode, entries: readonly Entry[], listedAt: number): TreeChanges {
    const children = folder.children;
    const changes: TreeChanges = { names: [], inodes: [], dropped: [] };
    if (children === undefined) return changes;
    const path = folder.entry.path;
    // The kernel has seen nothing of a folder never listed (it waits for the listing): nothing to drop.
    const seen = folder.listedAt !== undefined;
    const listed = new Map<string, Entry>();
    for (const entry of entries)
      if (entry.path !== path && parentPath(entry.path) === path) listed.set(baseName(entry.path), entry);
    const gone = new Set<string>();
    for (const [name, node] of children) {
      const entry = listed.get(name);
      if (entry !== undefined && sameContent(node.entry, entry)) continue;
      this.#drop(node, changes.dropped);
      children.delete(name);
      gone.add(name);
      if (!seen) continue;
      changes.names.push({ parent: folder.ino, name });
      changes.inodes.push(node.ino);
    }
    for (const [name, entry] of listed) {
      const kept = children.get(name);
      if (kept === undefined) {
        children.set(name, this.#add(entry, folder.ino));
        if (seen && !gone.has(name)) changes.names.push({ parent: folder.ino, name });
      } else if (!sameAttributes(kept.entry, entry)) {
        kept.entry = entry;
        if (seen) changes.inodes.push(kept.ino);
        if (kept.children !== undefined) this.markStale(kept); // a folder's mtime moves as its names do
      }
    }
    if (changes.names.length > 0) changes.inodes.push(folder.ino);
    folder.listedAt = listedAt;
    return changes;
  }

  /** [ino, mode, nlink, size, mtimeMs, uid, gid] as the addon reads it. */
  attr(node: Inode, out = new Float64Array(ATTR_FIELDS), at = 0): Float64Array {
    const { entry } = node;
    const size = entry.kind === EntryKind.SYMLINK ? Buffer.byteLength(entry.linkTarget) : entry.size;
    out.set([node.ino, modeOf(entry), node.children ? 2 : 1, size, entry.mtimeMs, this.#uid, this.#gid], at);
    return out;
  }

  #add(entry: Entry, parentIno: number): Inode {
    const ino = this.#nextIno++;
    const children = entry.kind === EntryKind.DIRECTORY ? new Map<string, Inode>() : undefined;
    const node: Inode = { ino, entry, parentIno, children, listedAt: undefined };
    this.#byIno.set(ino, node);
    this.#byPath.set(entry.path, node);
    return node;
  }

  /** Forgets `node` and everything beneath it, collecting their numbers. */
  #drop(node: Inode, dropped: number[]): void {
    for (const child of node.children?.values() ?? []) this.#drop(child, dropped);
    this.#byIno.delete(node.ino);
    if (this.#byPath.get(node.entry.path) === node) this.#byPath.delete(node.entry.path);
    dropped.push(node.ino);
    this.#retired.set(node.ino, node);
    for (const oldest of this.#retired.keys()) {
      if (this.#retired.size <= RETIRED_INODES) break;
      this.#retired.delete(oldest);
    }
  }
}

/** The same file as far as its bytes go: a node is kept for it (and its cached pages stay valid). */
function sameContent(old: Entry, listed: Entry): boolean {
  if (old.kind !== listed.kind) return false;
  if (old.kind === EntryKind.DIRECTORY) return true;
  return old.size === listed.size && old.mtimeMs === listed.mtimeMs && old.linkTarget === listed.linkTarget;
}

function sameAttributes(old: Entry, listed: Entry): boolean {
  return old.mode === listed.mode && old.mtimeMs === listed.mtimeMs && old.size === listed.size;
}

function currentUser(): { uid: number; gid: number } {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

function modeOf(entry: Entry): number {
  const type =
    entry.kind === EntryKind.DIRECTORY ? S_IFDIR : entry.kind === EntryKind.SYMLINK ? S_IFLNK : S_IFREG;
  return type | (entry.mode & 0o7777);
}

function depth(path: string): number {
  if (path === "") return 0;
  let count = 1;
  for (const char of path) if (char === "/") count++;
  return count;
}

export function parentPath(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "" : path.slice(0, slash);
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}
