/**
 * Removing names beneath a folder held open, the one way anything is removed from a destination
 * (`pull --delete`; what `pull --watch`'s host reports gone): every component of a path is opened
 * relative to the folder before it, never through a symlink (directory-io.ts's openFolder refuses
 * one), and the last is unlinked or removed relative to its folder's descriptor. A folder swapped
 * for a symlink to elsewhere mid-way is refused, not followed, so nothing outside the root is ever
 * removed; a symlink named for removal is removed itself, never what it points to. A folder is
 * emptied first, depth-first, through descriptors, and what `protect` keeps inside it keeps the
 * folder (as rsync, which leaves "cannot delete non-empty directory"). A folder something is
 * removed from keeps its mtime: a mirror's folders keep the times the pull gave them from the source.
 */
import { closeSync, constants, fstatSync, futimesSync, rmdirSync, type Stats } from "node:fs";
import { join } from "node:path";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { directoryIo, type OpenFolder } from "./directory-io.js";

/** Paths reported by name in a RemovalReport; the rest are counted. */
export const MAX_REPORTED_REMOVALS = 1000;

export interface RemovalOptions {
  /**
   * Whether a path ("/"-separated, relative to the root) must stay, met while emptying a folder
   * named for removal (`--exclude`d names, which rsync's --delete keeps).
   */
  protect?: (path: string, isFolder: boolean) => boolean;
  /** Remove nothing: report what would be removed (`pull --dry-run --delete`). */
  dryRun?: boolean;
}

/** A path that could not be removed, and why. */
export interface RemovalFailure {
  path: string;
  /**
   * UNSAFE_NAME: a name on the way is not a real folder (a symlink, a file), so nothing beneath
   * it is removed; NOT_FOUND: a folder on the way is gone; others as the file system said.
   */
  code: ErrorCode;
  message: string;
}

/** What a removal did. */
export interface RemovalReport {
  /** Entries removed, each folder's contents included (the first MAX_REPORTED_REMOVALS by path). */
  removed: string[];
  removedCount: number;
  /** Paths that could not be removed, and why (the first MAX_REPORTED_REMOVALS). */
  failures: RemovalFailure[];
  failureCount: number;
}

/**
 * Removes each of `paths` ("/"-separated, relative to `root`, no "." or ".." components) with
 * what it holds; a name already gone is not an error. Synchronous, as the destination's calls are.
 */
export function removeBeneath(
  root: OpenFolder,
  paths: Iterable<string>,
  options: RemovalOptions = {},
): RemovalReport {
  const report: RemovalReport = { removed: [], removedCount: 0, failures: [], failureCount: 0 };
  const remover = new Remover(report, options.protect ?? (() => false), options.dryRun === true);
  for (const path of paths) remover.remove(root, path);
  return report;
}

class Remover {
  readonly #report: RemovalReport;
  readonly #protect: (path: string, isFolder: boolean) => boolean;
  readonly #dryRun: boolean;

  constructor(report: RemovalReport, protect: (path: string, isFolder: boolean) => boolean, dryRun: boolean) {
    this.#report = report;
    this.#protect = protect;
    this.#dryRun = dryRun;
  }

  /** Opens the folders on the way to `path`'s last name, one beneath the other, and removes it. */
  remove(root: OpenFolder, path: string): void {
    const names = path.split("/");
    const last = names.pop();
    if (last === undefined || [...names, last].some((name) => name === "" || name === "." || name === "..")) {
      this.#failed(path, new TeleportError(ErrorCode.PATH_ESCAPE, "not a path beneath the destination"));
      return;
    }
    const opened: OpenFolder[] = [];
    try {
      let folder = root;
      for (const name of names) {
        folder = openOnTheWay(folder, name);
        opened.push(folder);
      }
      const times = fstatSync(folder.fd);
      this.#removeName(folder, last, path);
      if (!this.#dryRun) restoreTimes(folder.fd, times);
    } catch (err) {
      this.#failed(path, toTeleportError(err));
    } finally {
      for (const folder of opened) closeFolder(folder);
    }
  }

  /** Removes `name` in `folder` (`path` from the root); a folder after what it holds. */
  #removeName(folder: OpenFolder, name: string, path: string): boolean {
    const stat = directoryIo.stat(folder, name);
    if (stat === undefined) return true; // already gone
    if ((stat.mode & constants.S_IFMT) !== constants.S_IFDIR) {
      if (!this.#dryRun) directoryIo.unlink(folder, name);
      this.#removed(path);
      return true;
    }
    const inside = directoryIo.openFolder(folder, name);
    let emptied: boolean;
    try {
      emptied = this.#empty(inside, path);
    } finally {
      closeFolder(inside);
    }
    if (!emptied) return false;
    if (!this.#dryRun) removeFolderAt(folder, name);
    this.#removed(path);
    return true;
  }

  /** Removes what the folder holds but what `protect` keeps; true if nothing is left. */
  #empty(folder: OpenFolder, path: string): boolean {
    let empty = true;
    for (const name of directoryIo.list(folder)) {
      const childPath = `${path}/${name}`;
      const stat = directoryIo.stat(folder, name);
      if (stat === undefined) continue;
      const isFolder = (stat.mode & constants.S_IFMT) === constants.S_IFDIR;
      if (this.#protect(childPath, isFolder)) {
        empty = false;
        continue;
      }
      try {
        if (!this.#removeName(folder, name, childPath)) empty = false;
      } catch (err) {
        this.#failed(childPath, toTeleportError(err));
        empty = false;
      }
    }
    return empty;
  }

  #removed(path: string): void {
    if (this.#report.removed.length < MAX_REPORTED_REMOVALS) this.#report.removed.push(path);
    this.#report.removedCount++;
  }

  #failed(path: string, error: TeleportError): void {
    if (this.#report.failures.length < MAX_REPORTED_REMOVALS)
      this.#report.failures.push({ path, code: error.code, message: error.detail });
    this.#report.failureCount++;
  }
}

/** The folder `name` on the way to a path; a symlink or file there is refused, never followed. */
function openOnTheWay(folder: OpenFolder, name: string): OpenFolder {
  try {
    return directoryIo.openFolder(folder, name);
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code;
    if (errno !== "ELOOP" && errno !== "ENOTDIR") throw err;
    const path = join(folder.path, name);
    throw new TeleportError(ErrorCode.UNSAFE_NAME, `${path} is not a folder: nothing beneath it is removed`, {
      cause: err,
    });
  }
}

/**
 * rmdir of `name` relative to the folder's descriptor, through /proc/self/fd where there is one
 * (the addon has no unlinkat(AT_REMOVEDIR)); rmdir never follows a symlink in the last place.
 */
function removeFolderAt(folder: OpenFolder, name: string): void {
  const base = directoryIo.kind === "path" ? folder.path : `/proc/self/fd/${folder.fd}`;
  rmdirSync(join(base, name));
}

/** Puts a folder's times back; a folder this user may not set them on keeps the new ones. */
function restoreTimes(fd: number, times: Stats): void {
  try {
    futimesSync(fd, times.atimeMs / 1000, times.mtimeMs / 1000);
  } catch {
    // not the owner: the removal stands, with the folder's times as the kernel left them
  }
}

function closeFolder(folder: OpenFolder): void {
  try {
    closeSync(folder.fd);
  } catch {
    // closing a descriptor we opened: nothing to do if it fails
  }
}
