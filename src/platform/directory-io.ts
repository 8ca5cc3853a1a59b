/**
 * Names made relative to an open folder: a pull holds each folder of its destination open and
 * creates, renames and links inside it through the folder's descriptor, so a folder swapped for
 * a symlink after it was opened cannot send a write elsewhere.
 *
 * - Native (the addon's at.c and metadata.c): openat, mkdirat, renameat, linkat, symlinkat,
 *   unlinkat, fstatat, readlinkat, and utimensat with AT_SYMLINK_NOFOLLOW for a symlink's times.
 * - Portable (TELEPORT_NATIVE=0): Node's path calls on `/proc/self/fd/FD/NAME`, which the kernel
 *   resolves from the open folder itself, as the *at calls do (lutimes for a symlink's times).
 *   Without /proc (not Linux) the folder's path is used: a folder swapped after it was opened is
 *   then followed (README, "Security model").
 */
import {
  closeSync,
  constants,
  existsSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  renameSync,
  symlinkSync,
  unlinkSync,
} from "node:fs";
import { join } from "node:path";
import { toTeleportError } from "../errors.js";
import { type NativeAddon, native } from "./native.js";

/** A folder held open: `path` names it for messages (and for the fallback without /proc). */
export interface OpenFolder {
  readonly fd: number;
  readonly path: string;
}

/** A symlink as it is on disk. */
export interface SymlinkStat {
  readonly target: string;
  readonly mtimeMs: number;
}

/** What a name is, read without following it. */
export interface NameStat {
  readonly mode: number;
  readonly dev: number;
  readonly ino: number;
}

export interface DirectoryIo {
  readonly kind: "native" | "proc" | "path";
  /** Opens the folder `name` in `folder`; refuses (ENOTDIR, ELOOP) anything but a real folder. */
  openFolder(folder: OpenFolder, name: string): OpenFolder;
  makeFolder(folder: OpenFolder, name: string, mode: number): void;
  openFile(folder: OpenFolder, name: string, flags: number, mode: number): number;
  rename(from: OpenFolder, fromName: string, to: OpenFolder, toName: string): void;
  /** A new name of what `fromName` is; a symlink is linked, never followed. */
  link(from: OpenFolder, fromName: string, to: OpenFolder, toName: string): void;
  symlink(target: string, folder: OpenFolder, name: string): void;
  unlink(folder: OpenFolder, name: string): void;
  /** undefined if nothing has that name. */
  stat(folder: OpenFolder, name: string): NameStat | undefined;
  /**
   * The symlink `name`'s target and mtime; undefined if `name` is anything else, nothing, or
   * cannot be read (whoever then makes a symlink there hears why).
   */
  readSymlink(folder: OpenFolder, name: string): SymlinkStat | undefined;
  /** Sets the atime and mtime of the symlink `name` itself, never of what it points to. */
  setSymlinkTimes(folder: OpenFolder, name: string, mtimeMs: number): void;
  list(folder: OpenFolder): string[];
}

/** How a folder of the destination is opened: a real folder only, never through a symlink. */
export const FOLDER_FLAGS = constants.O_RDONLY | (constants.O_DIRECTORY ?? 0) | (constants.O_NOFOLLOW ?? 0);

/**
 * A destination's top folder, opened as the root every name beneath it is relative to. Only the
 * names beneath are refused as symlinks: the top itself is the path the user chose, followed.
 */
export function openTopFolder(path: string): OpenFolder {
  try {
    return { fd: openSync(path, constants.O_RDONLY | constants.O_DIRECTORY), path };
  } catch (err) {
    throw toTeleportError(err, path);
  }
}

/** Runs `use` with the top folder `path` held open (openTopFolder), closing it after. */
export function withTopFolder<T>(path: string, use: (top: OpenFolder) => T): T {
  const top = openTopFolder(path);
  try {
    return use(top);
  } finally {
    closeSync(top.fd);
  }
}

function nativeDirectoryIo(addon: NativeAddon): DirectoryIo {
  return {
    kind: "native",
    openFolder: (folder, name) => ({
      fd: addon.openAt(folder.fd, name, FOLDER_FLAGS, 0),
      path: join(folder.path, name),
    }),
    makeFolder: (folder, name, mode) => addon.mkdirAt(folder.fd, name, mode),
    openFile: (folder, name, flags, mode) => addon.openAt(folder.fd, name, flags, mode),
    rename: (from, fromName, to, toName) => addon.renameAt(from.fd, fromName, to.fd, toName),
    link: (from, fromName, to, toName) => addon.linkAt(from.fd, fromName, to.fd, toName),
    symlink: (target, folder, name) => addon.symlinkAt(target, folder.fd, name),
    unlink: (folder, name) => addon.unlinkAt(folder.fd, name),
    stat(folder, name) {
      try {
        const [mode, dev, ino] = addon.statAt(folder.fd, name);
        return { mode, dev, ino };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw err;
      }
    },
    readSymlink(folder, name) {
      try {
        return addon.readSymlinkAt(folder.fd, name);
      } catch {
        return undefined;
      }
    },
    // atime as mtime, as files and folders get it.
    setSymlinkTimes: (folder, name, mtimeMs) => addon.utimensAt(folder.fd, name, mtimeMs, mtimeMs),
    list: (folder) => readdirSync(`/proc/self/fd/${folder.fd}`),
  };
}

/** Node's path calls, on a path that resolves from the open folder where /proc has one. */
function pathDirectoryIo(throughProc: boolean): DirectoryIo {
  const folderPath = (folder: OpenFolder) => (throughProc ? `/proc/self/fd/${folder.fd}` : folder.path);
  const at = (folder: OpenFolder, name: string) => join(folderPath(folder), name);
  return {
    kind: throughProc ? "proc" : "path",
    openFolder: (folder, name) => ({
      fd: openSync(at(folder, name), FOLDER_FLAGS),
      path: join(folder.path, name),
    }),
    makeFolder: (folder, name, mode) => mkdirSync(at(folder, name), { mode }),
    openFile: (folder, name, flags, mode) => openSync(at(folder, name), flags, mode),
    rename: (from, fromName, to, toName) => renameSync(at(from, fromName), at(to, toName)),
    link: (from, fromName, to, toName) => linkSync(at(from, fromName), at(to, toName)),
    symlink: (target, folder, name) => symlinkSync(target, at(folder, name)),
    unlink: (folder, name) => unlinkSync(at(folder, name)),
    stat(folder, name) {
      const stats = lstatSync(at(folder, name), { throwIfNoEntry: false });
      return stats === undefined ? undefined : { mode: stats.mode, dev: stats.dev, ino: stats.ino };
    },
    readSymlink(folder, name) {
      try {
        const stats = lstatSync(at(folder, name));
        if (!stats.isSymbolicLink()) return undefined;
        return { target: readlinkSync(at(folder, name)), mtimeMs: stats.mtimeMs };
      } catch {
        return undefined;
      }
    },
    setSymlinkTimes(folder, name, mtimeMs) {
      lutimesSync(at(folder, name), mtimeMs / 1000, mtimeMs / 1000);
    },
    list: (folder) => readdirSync(folderPath(folder)),
  };
}

/** The implementation this process uses. */
export const directoryIo: DirectoryIo =
  native !== undefined && typeof native.openAt === "function"
    ? nativeDirectoryIo(native)
    : pathDirectoryIo(process.platform === "linux" && existsSync("/proc/self/fd"));
