/**
 * The mounted tree: inode numbers for the entries of a listing (never reused while mounted) and
 * the attributes the kernel is answered with.
 */
import { type Entry, EntryKind } from "../wire/messages.js";
import { ATTR_FIELDS } from "./binding.js";

export const ROOT_INO = 1;

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

export interface Inode {
  readonly ino: number;
  readonly entry: Entry;
  /** The folder holding it (the root's is the root). */
  readonly parentIno: number;
  /** Names to children, for folders; undefined otherwise. */
  readonly children: Map<string, Inode> | undefined;
}

export class InodeTable {
  readonly #byIno: Inode[] = [];
  readonly #byPath = new Map<string, Inode>();
  readonly #uid: number;
  readonly #gid: number;

  /** `root` is the mounted folder's entry; paths in `entries` are relative to the share. */
  constructor(root: Entry, entries: Iterable<Entry>, owner = currentUser()) {
    this.#uid = owner.uid;
    this.#gid = owner.gid;
    const rootNode = this.#add(root, undefined);
    const sorted = [...entries].filter((entry) => entry.path !== root.path);
    sorted.sort((a, b) => depth(a.path) - depth(b.path));
    for (const entry of sorted) {
      const parent = this.#byPath.get(parentPath(entry.path));
      // Entries whose folder is missing from the listing are left out, not attached at the root.
      if (parent?.children !== undefined) this.#add(entry, parent);
    }
    this.#byPath.set(root.path, rootNode);
  }

  get(ino: number): Inode | undefined {
    return this.#byIno[ino];
  }

  lookup(parent: number, name: string): Inode | undefined {
    return this.#byIno[parent]?.children?.get(name);
  }

  /** [ino, mode, nlink, size, mtimeMs, uid, gid] as the addon reads it. */
  attr(node: Inode, out = new Float64Array(ATTR_FIELDS), at = 0): Float64Array {
    const { entry } = node;
    const size = entry.kind === EntryKind.SYMLINK ? Buffer.byteLength(entry.linkTarget) : entry.size;
    out.set([node.ino, modeOf(entry), node.children ? 2 : 1, size, entry.mtimeMs, this.#uid, this.#gid], at);
    return out;
  }

  #add(entry: Entry, parent: Inode | undefined): Inode {
    const ino = this.#byIno.length === 0 ? ROOT_INO : this.#byIno.length;
    const children = entry.kind === EntryKind.DIRECTORY ? new Map<string, Inode>() : undefined;
    const node: Inode = { ino, entry, parentIno: parent?.ino ?? ROOT_INO, children };
    if (this.#byIno.length === 0) this.#byIno.push(node); // index 0 is never an inode
    this.#byIno[ino] = node;
    this.#byPath.set(entry.path, node);
    parent?.children?.set(baseName(entry.path), node);
    return node;
  }
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
  let count = 0;
  for (const char of path) if (char === "/") count++;
  return count;
}

function parentPath(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "" : path.slice(0, slash);
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}
