/**
 * Opening a file or folder beneath a directory descriptor, so that a folder renamed and replaced
 * by a symlink between a check and an open is never followed. Three ways, the first available:
 *
 * - `openat2`: the addon (native/beneath.c), Linux >= 5.6: RESOLVE_BENEATH (and
 *   RESOLVE_NO_SYMLINKS unless symlinks inside are allowed), the kernel refusing any escape.
 * - `proc` (Linux without the addon or openat2): the path is looked up from the directory's
 *   /proc/self/fd link, which names the directory the descriptor holds whatever was renamed since;
 *   the last component is O_NOFOLLOW, and a path of several components is checked after the open
 *   by the descriptor's own /proc/self/fd link, which must lie inside the root.
 * - `path` (no /proc): the path string, then the same check by realpath and device+inode. Not
 *   free of races between the open and the check; said so in the README's security model.
 *
 * Every open is O_NONBLOCK, so a FIFO swapped in opens without waiting for a writer (its caller
 * then refuses it by fstat); reads of regular files ignore the flag.
 */
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  lstatSync,
  openSync,
  readlinkSync,
  realpathSync,
  statSync,
} from "node:fs";
import { join, sep } from "node:path";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { type NativeBeneath, nativeBeneath } from "./native.js";

/** Linux's O_PATH (a handle on a file, not opened for reading): stat and lookups only. */
export const O_PATH = 0o10000000;

/** A folder held open, and its real path (errors and the `path` way's checks). */
export interface FolderHandle {
  fd: number;
  path: string;
}

export interface OpenOptions {
  /** Whether symlinks on the way may be followed while they stay inside `within` (a top path). */
  followInside?: boolean;
  /** The real path of the share root: nothing opened may lie outside it. */
  within: string;
}

export type BeneathWay = "openat2" | "proc" | "path";

/** What a name is, looked up without following it: the fields a file's identity is made of. */
export interface NameStats {
  mode: number;
  dev: number;
  ino: number;
  size: number;
  /** As Node's Stats has it (seconds * 1e3 + nanoseconds / 1e6), so the two compare equal. */
  mtimeMs: number;
  nlink: number;
}

/** A descriptor opened beneath a folder, and what it is. */
export interface DescribedFd {
  fd: number;
  stats: NameStats;
}

/** The addon's stat fields: mode, dev, ino, size, mtime seconds, nanoseconds, nlink. */
const STAT_FIELDS = 7;
/** Not a mode: the stat fields were not filled. */
const UNFILLED = -1;

/** Errors that say the path went where it must not: above the root, or through a symlink. */
const ESCAPES = new Set(["EXDEV", "ELOOP"]);

export class BeneathOpener {
  readonly #addon: NativeBeneath | undefined;
  readonly #proc: boolean;
  #openat2: boolean;
  readonly #statFields = new Float64Array(STAT_FIELDS);

  constructor(addon: NativeBeneath | undefined, proc = existsSync("/proc/self/fd")) {
    this.#addon = addon;
    this.#openat2 = addon !== undefined;
    this.#proc = proc;
  }

  /** Flags that open a folder to look things up beneath it (O_PATH where there is one). */
  get folderFlags(): number {
    return (this.#proc ? O_PATH : constants.O_RDONLY) | constants.O_DIRECTORY;
  }

  /**
   * A path naming `name` inside `folder` that goes through the folder's descriptor, not its
   * path string (through /proc/self/fd); `name` "" names the folder itself. For listing a
   * folder and lstat or readlink of its entries.
   */
  pathAt(folder: FolderHandle, name: string): string {
    const base = this.#proc ? `/proc/self/fd/${folder.fd}` : folder.path;
    return name === "" ? base : `${base}/${name}`;
  }

  get way(): BeneathWay {
    if (this.#openat2) return "openat2";
    return this.#proc ? "proc" : "path";
  }

  /**
   * The descriptor of `relPath` ("/"-separated, no `..`) beneath `folder`, opened with `flags`
   * and O_NONBLOCK; throws PATH_ESCAPE where it leads outside `within` or through a symlink.
   */
  open(folder: FolderHandle, relPath: string, flags: number, options: OpenOptions): number {
    return this.#open(folder, relPath, flags, options, undefined);
  }

  /**
   * `open`, and what it opened (fstat): with the addon one call and no Stats object, which a walk
   * of many small files pays per file.
   */
  openDescribed(folder: FolderHandle, relPath: string, flags: number, options: OpenOptions): DescribedFd {
    const fields = this.#statFields;
    fields[0] = UNFILLED;
    const fd = this.#open(folder, relPath, flags, options, fields);
    if (fields[0] !== UNFILLED) return { fd, stats: statsOf(fields) };
    try {
      return { fd, stats: fstatSync(fd) };
    } catch (err) {
      closeSync(fd);
      throw openError(err, relPath);
    }
  }

  /** Fills `fields` (see STAT_FIELDS) where the addon opens it; else leaves them. */
  #open(
    folder: FolderHandle,
    relPath: string,
    flags: number,
    options: OpenOptions,
    fields: Float64Array | undefined,
  ): number {
    const follow = options.followInside === true;
    // O_PATH never waits on a FIFO, and openat2 refuses it with O_NONBLOCK.
    const nonBlocking = this.#proc && (flags & O_PATH) !== 0 ? 0 : constants.O_NONBLOCK;
    const openFlags = flags | nonBlocking | (follow ? 0 : constants.O_NOFOLLOW);
    try {
      if (this.#openat2) {
        const fd = this.#openat2Beneath(folder, relPath, openFlags, !follow, fields);
        if (fd !== undefined) return fd;
      }
      if (this.#proc) return this.#openByProc(folder, relPath, openFlags, options);
      return this.#openByPath(folder, relPath, openFlags, options);
    } catch (err) {
      throw openError(err, relPath);
    }
  }

  /**
   * What the one name `name` inside `folder` is now, a symlink described and not followed; no
   * open, one system call (the host looks up each file a request names). Undefined if nothing
   * has that name; throws for a `name` that is not one component.
   */
  statName(folder: FolderHandle, name: string): NameStats | undefined {
    if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0"))
      throw new TeleportError(ErrorCode.INTERNAL, `"${name}" is not one name`);
    if (this.#addon === undefined) return lstatSync(this.pathAt(folder, name), { throwIfNoEntry: false });
    const fields = this.#statFields;
    try {
      this.#addon.statNameBeneath(folder.fd, name, fields);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw toTeleportError(err, `"${name}"`);
    }
    return statsOf(fields);
  }

  #openat2Beneath(
    folder: FolderHandle,
    relPath: string,
    flags: number,
    noSymlinks: boolean,
    fields: Float64Array | undefined,
  ): number | undefined {
    try {
      if (fields === undefined) return this.#addon?.openBeneath(folder.fd, relPath || ".", flags, noSymlinks);
      return this.#addon?.openBeneath(folder.fd, relPath || ".", flags, noSymlinks, fields);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOSYS") throw err;
      this.#openat2 = false; // a kernel before 5.6: the fallback from now on
      return undefined;
    }
  }

  #openByProc(folder: FolderHandle, relPath: string, flags: number, options: OpenOptions): number {
    const fd = openSync(join(`/proc/self/fd/${folder.fd}`, relPath), flags);
    // One component beneath the held folder, not followed: nothing on the way could be swapped.
    if (!options.followInside && relPath !== "" && !relPath.includes("/")) return fd;
    return checkedInside(fd, readlinkSync(`/proc/self/fd/${fd}`), options.within, relPath);
  }

  #openByPath(folder: FolderHandle, relPath: string, flags: number, options: OpenOptions): number {
    const path = join(folder.path, relPath);
    const fd = openSync(path, flags);
    let real: string;
    try {
      real = realpathSync.native(path);
      const opened = fstatSync(fd);
      const named = statSync(real);
      if (opened.dev !== named.dev || opened.ino !== named.ino) throw pathEscape(relPath);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return checkedInside(fd, real, options.within, relPath);
  }
}

/** The addon's stat fields as NameStats. */
function statsOf(fields: Float64Array): NameStats {
  const [mode = 0, dev = 0, ino = 0, size = 0, seconds = 0, nanoseconds = 0, nlink = 0] = fields;
  return { mode, dev, ino, size, mtimeMs: seconds * 1e3 + nanoseconds / 1e6, nlink };
}

/** `fd` if `real` lies inside `within`; else closes it and throws PATH_ESCAPE. */
function checkedInside(fd: number, real: string, within: string, relPath: string): number {
  if (real === within || real.startsWith(within === sep ? sep : within + sep)) return fd;
  closeSync(fd);
  throw pathEscape(relPath);
}

function pathEscape(path: string): TeleportError {
  return new TeleportError(ErrorCode.PATH_ESCAPE, `"${path}" leads outside the share`);
}

function openError(err: unknown, relPath: string): TeleportError {
  const code = (err as NodeJS.ErrnoException).code ?? "";
  if (ESCAPES.has(code)) return pathEscape(relPath);
  if (code === "ENXIO" || code === "EOPNOTSUPP")
    return new TeleportError(ErrorCode.UNSUPPORTED_TYPE, `"${relPath}" is not a file or folder`);
  return toTeleportError(err, `"${relPath}"`);
}

/** The way this process opens beneath a folder. */
export const beneath = new BeneathOpener(nativeBeneath);
