/**
 * What the share says about one file system entry: its Entry (a file, folder or symlink that
 * stays inside; nothing else is served), its identity once open, and, for a path that is not
 * there, whether it would have led outside (so a client cannot probe what exists outside).
 */
import { closeSync, fstatSync, readlinkSync, realpathSync, type Stats, statSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import type { NameStats } from "../platform/open-beneath.js";
import { type Entry, EntryKind, SkipReason } from "../wire/messages.js";
import { checkLinkTarget, splitWirePath } from "../wire/path.js";
import type { FileIdentity } from "./recent-chunks.js";

/** A regular file of the share, open for reading. */
export interface OpenedFile {
  fd: number;
  /** Device, inode, size and mtime when opened: which bytes the file held (see RecentChunks). */
  identity: FileIdentity;
  size: number;
}

export interface ShareEntry {
  entry: Entry;
  /** Absolute path on the host (inside the share): a name for messages. */
  absolutePath: string;
  /** For a file with more than one name (hard links): its device and inode, the same for all. */
  inode?: string;
  /**
   * A file of a walk with `openFiles`: open beneath its folder as the walk met it (whoever takes
   * the entry closes it), or why it could not be opened.
   */
  file?: OpenedFile | TeleportError;
}

/**
 * An Entry for a file, folder or inside-pointing symlink; null for anything not served. `at`
 * names the same file through its folder's descriptor (see BeneathOpener.pathAt).
 */
export function describeEntry(
  root: string,
  wirePath: string,
  absolutePath: string,
  stats: Stats,
  at: string,
): ShareEntry | null {
  if (stats.isFile()) return describeFile(wirePath, absolutePath, stats, at);
  const base = { path: wirePath, mode: stats.mode & 0o7777, mtimeMs: stats.mtimeMs, linkTarget: "" };
  if (stats.isDirectory()) return { absolutePath, entry: { ...base, kind: EntryKind.DIRECTORY, size: 0 } };
  if (stats.isSymbolicLink()) {
    const target = insideLinkTarget(root, wirePath, absolutePath, at);
    if (target === null) return null;
    return { absolutePath, entry: { ...base, kind: EntryKind.SYMLINK, size: 0, linkTarget: target } };
  }
  return null; // devices, FIFOs, sockets are never served
}

/** The Entry of a regular file (see describeEntry). */
export function describeFile(
  wirePath: string,
  absolutePath: string,
  stats: NameStats,
  at: string,
): ShareEntry {
  const entry = {
    path: wirePath,
    kind: EntryKind.FILE,
    mode: stats.mode & 0o7777,
    mtimeMs: stats.mtimeMs,
    size: stats.size,
    linkTarget: "",
  };
  const found: ShareEntry = { absolutePath, entry };
  if (stats.nlink > 1) found.inode = inodeKey(at);
  return found;
}

/** Why describeEntry left an entry out (it returned null for it). */
export function skipReasonOf(stats: Stats): SkipReason {
  if (stats.isSymbolicLink()) return SkipReason.SYMLINK_OUTSIDE;
  if (stats.isFIFO()) return SkipReason.FIFO;
  if (stats.isSocket()) return SkipReason.SOCKET;
  return SkipReason.DEVICE;
}

/** The symlink's target as a relative path if it stays inside the share, else null. */
function insideLinkTarget(root: string, wirePath: string, absolutePath: string, at: string): string | null {
  let target = readlinkSync(at);
  if (isAbsolute(target)) {
    if (!contains(root, target)) return null;
    target = relative(dirname(absolutePath), target) || ".";
  }
  try {
    checkLinkTarget(wirePath, target);
  } catch {
    return null;
  }
  try {
    if (!contains(root, realpathSync.native(at))) return null;
  } catch {
    // Dangling but lexically inside: kept, as rsync -l would.
  }
  return target.split(sep).join("/");
}

/**
 * Throws PATH_ESCAPE if a wire path that was not found leads outside the share through a
 * symlink: otherwise "not found" would tell a client which files exist outside.
 */
export function refuseEscapeByName(root: string, wirePath: string): void {
  const parts = splitWirePath(wirePath);
  const escapeError = new TeleportError(ErrorCode.PATH_ESCAPE, `"${wirePath}" leads outside the share`);
  const danglingTarget = quietly(() => readlinkSync(join(root, ...parts)));
  if (danglingTarget !== undefined) {
    const parent = quietly(() => realpathSync.native(join(root, ...parts.slice(0, -1)))) ?? root;
    if (!contains(root, resolve(parent, danglingTarget))) throw escapeError;
  }
  for (let length = parts.length - 1; length > 0; length--) {
    const ancestor = quietly(() => realpathSync.native(join(root, ...parts.slice(0, length))));
    if (ancestor === undefined) continue;
    if (!contains(root, ancestor)) throw escapeError;
    return;
  }
}

function contains(root: string, absolutePath: string): boolean {
  return absolutePath === root || absolutePath.startsWith(root + sep);
}

/** Device and inode, exactly: inode numbers may exceed 2^53. */
function inodeKey(at: string): string | undefined {
  const stats = quietly(() => statSync(at, { bigint: true }));
  return stats === undefined ? undefined : `${stats.dev}:${stats.ino}`;
}

/** Whether two descriptions are of the same bytes of the same file: see OpenedFile.identity. */
export function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/** `fd` as an OpenedFile if it is a regular file; else closes it and refuses. */
export function regularFile(fd: number, wirePath: string): OpenedFile {
  let stats: Stats;
  try {
    stats = fstatSync(fd);
  } catch (err) {
    closeSync(fd);
    throw toTeleportError(err, `"${wirePath}"`);
  }
  if (stats.isFile()) return { fd, identity: stats, size: stats.size };
  closeSync(fd);
  throw new TeleportError(ErrorCode.NOT_A_FILE, `"${wirePath}" is not a regular file`);
}

/** What `read` returns, or undefined if it throws. */
export function quietly<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}
