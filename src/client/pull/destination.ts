/**
 * The destination folder: where a file is written (its part file), committed under its name,
 * linked, and given its metadata. Paths come from the host and were checked by `splitWirePath`;
 * here we also make sure we never write through a symlink: folders we write into are verified to
 * be real folders, files are created under fresh part-file names with O_EXCL and renamed into
 * place only when complete and verified.
 *
 * These calls are synchronous, like every per-file call of a pull: each takes a few microseconds
 * in the kernel, far less than a round trip through libuv's thread pool (docs/decisions.md,
 * "Synchronous destination calls").
 */
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  closeSync,
  constants,
  copyFileSync,
  fchmodSync,
  ftruncateSync,
  futimesSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { ErrorCode, TeleportError, toTeleportError } from "../../errors.js";
import { platformIo } from "../../platform/io.js";
import type { ChunkRef, Entry, Xattr } from "../../wire/messages.js";

const PART_SUFFIX = ".teleport-part";

/**
 * Creates `path` as a folder if missing (and says so); refuses if something else (a symlink, a
 * file) is there.
 */
function ensureRealDirectory(path: string): "created" | "existed" {
  try {
    mkdirSync(path, { mode: 0o700 });
    return "created";
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw toTeleportError(err, `creating ${path}`);
  }
  const stats = lstatSync(path);
  if (!stats.isDirectory()) {
    throw new TeleportError(
      ErrorCode.UNSAFE_NAME,
      `${path} exists and is not a folder; not writing through it`,
    );
  }
  return "existed";
}

/**
 * A part-file name next to `finalPath`, carrying the writer's process id: a part file whose
 * writer is gone, and which no journal lists for resuming, is a killed pull's leftover that the
 * next pull into the folder removes (see `partFileWriter`). Links and symlinks are made under
 * such a name too, then renamed.
 */
function partPathFor(finalPath: string): string {
  const unique = `${process.pid}-${randomBytes(6).toString("hex")}`;
  return join(dirname(finalPath), `.${shortened(basename(finalPath))}.${unique}${PART_SUFFIX}`);
}

/** `.NAME.PID-RANDOM` + PART_SUFFIX, as partPathFor makes them. */
const PART_NAME = /^\..+\.(\d+)-[0-9a-f]{12}\.teleport-part$/;

/** The process id of the pull that wrote the part file `name`; undefined if it is not one. */
function partFileWriter(name: string): number | undefined {
  const pid = PART_NAME.exec(name)?.[1];
  return pid === undefined ? undefined : Number(pid);
}

/** `name` if short, else a prefix and a hash of the whole: within NAME_MAX, and distinct. */
function shortened(name: string): string {
  if (Buffer.byteLength(name) <= 180) return name;
  const prefix = Buffer.from(name).subarray(0, 150).toString();
  return `${prefix}~${createHash("sha256").update(name).digest("hex").slice(0, 16)}`;
}

/**
 * Creates a new part file next to `finalPath`; O_EXCL|O_NOFOLLOW so no existing file or link is
 * reused.
 */
function createPartFile(finalPath: string): PartFile {
  const path = partPathFor(finalPath);
  const fd = createExclusive(path);
  if (fd === undefined) throw new TeleportError(ErrorCode.IO, `creating ${path}: it already exists`);
  return { path, fd };
}

/**
 * Opens a new file at `path` for reading and writing (local copies are read back to be verified,
 * see local-copies.ts), or undefined if something is already there.
 */
function createExclusive(path: string): number | undefined {
  const flags = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);
  try {
    return openSync(path, flags, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return undefined;
    throw toTeleportError(err, `creating ${path}`);
  }
}

/** Atomically puts a finished file or symlink at its final path (replacing an older copy). */
function commitPath(partPath: string, finalPath: string): void {
  try {
    renameSync(partPath, finalPath);
  } catch (err) {
    throw toTeleportError(err, `renaming into ${finalPath}`);
  }
}

/**
 * Makes `finalPath` another name of the regular file at `existingPath` (a copy where the file
 * system has no hard links), replacing what was there in one rename.
 */
function linkReplacing(existingPath: string, finalPath: string): void {
  const stats = lstatSync(existingPath);
  if (!stats.isFile()) throw new TeleportError(ErrorCode.IO, `${existingPath} is not a file pulled here`);
  const current = lstatSync(finalPath, { throwIfNoEntry: false });
  // Already that file (a re-pull): rename would do nothing and leave the new name behind.
  if (current !== undefined && current.ino === stats.ino && current.dev === stats.dev) return;
  const part = partPathFor(finalPath);
  try {
    linkSync(existingPath, part);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EPERM" && code !== "EMLINK" && code !== "EXDEV" && code !== "ENOTSUP") throw err;
    copyFileSync(existingPath, part, constants.COPYFILE_FICLONE);
  }
  commitPath(part, finalPath);
}

function createSymlink(target: string, finalPath: string): void {
  const part = partPathFor(finalPath);
  try {
    symlinkSync(target, part);
  } catch (err) {
    throw toTeleportError(err, `creating symlink ${finalPath}`);
  }
  commitPath(part, finalPath);
}

export function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone, or never there
  }
}

/** A file being written under a part-file name, open for reading and writing. */
export interface PartFile {
  readonly path: string;
  readonly fd: number;
}

/** What a folder of the destination held before the pull touched it (see Destination.mayExist). */
export interface FolderListing {
  readonly localPath: string;
  /**
   * Names in the folder before the pull touched it, read once: a file not among them has no old
   * copy, and needs no lstat to say so. null: too many to keep, ask per file. undefined: unread.
   */
  names: Set<string> | null | undefined;
}

/** What a file's commit or kept old copy sets on it, besides its bytes. */
export interface FileMetadata {
  readonly entry: Entry;
  /** Its extended attributes, with `--xattrs` (set before it appears under its name). */
  readonly xattrs: readonly Xattr[] | undefined;
}

/** How an old copy kept in place was brought up to date. */
export type KeptCopy = "as-it-was" | "metadata-set" | "metadata-and-xattrs-set";

/** A destination folder with more names than this is not listed up front (see FolderListing.names). */
const MAX_LISTED_NAMES = 100_000;

export class Destination {
  /** Whether a part file is a download the index keeps for resuming (never removed as a leftover). */
  readonly #isKeptDownload: (path: string) => boolean;

  constructor(isKeptDownload: (path: string) => boolean) {
    this.#isKeptDownload = isKeptDownload;
  }

  /** Creates a folder if missing; true if it was created (so it holds nothing yet). */
  makeDirectory(localPath: string): boolean {
    return ensureRealDirectory(localPath) === "created";
  }

  makeSymlink(target: string, localPath: string): void {
    createSymlink(target, localPath);
  }

  /** Makes `localPath` another name of the complete file at `existingPath`. */
  link(existingPath: string, localPath: string): void {
    linkReplacing(existingPath, localPath);
  }

  /** A folder gets its mode and mtime last, since creating entries inside it changes its mtime. */
  setFolderMetadata(localPath: string, entry: Entry): void {
    chmodSync(localPath, entry.mode & 0o777);
    utimesSync(localPath, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
  }

  /**
   * Whether `path` in `folder` may be an old copy: false only if the folder's listing says no.
   * The listing, made once per folder, also removes the part files that killed pulls left there.
   */
  mayExist(folder: FolderListing, path: string): boolean {
    if (folder.names === undefined) {
      let names: string[] | null;
      try {
        names = readdirSync(folder.localPath);
      } catch {
        names = null;
      }
      if (names !== null) this.#removeLeftovers(folder.localPath, names);
      folder.names = names !== null && names.length <= MAX_LISTED_NAMES ? new Set(names) : null;
    }
    return folder.names === null || folder.names.has(basename(path));
  }

  /**
   * Removes part files whose writer is no longer running, except downloads the index keeps for
   * resuming: a pull killed between creating a file and journaling it, or writing a file too
   * small to journal, leaves one behind.
   */
  #removeLeftovers(folder: string, names: readonly string[]): void {
    for (const name of names) {
      const writer = partFileWriter(name);
      if (writer === undefined || writer === process.pid || isRunning(writer)) continue;
      const path = join(folder, name);
      if (this.#isKeptDownload(path)) continue;
      removeQuietly(path);
    }
  }

  createPartFile(finalPath: string): PartFile {
    return createPartFile(finalPath);
  }

  /** Opens an interrupted pull's part file to go on writing it; undefined if it cannot be opened. */
  reopenPartFile(path: string): PartFile | undefined {
    // Read and write: local copies are read back to be verified (local-copies.ts).
    try {
      return { path, fd: openSync(path, constants.O_RDWR | (constants.O_NOFOLLOW ?? 0)) };
    } catch {
      return undefined;
    }
  }

  /**
   * Reserves the blocks of each run of back-to-back chunks in `chunks` (not the holes between
   * runs): a disk without room fails the file now, not halfway through.
   */
  preallocate(part: PartFile, chunks: readonly ChunkRef[], finalPath: string): void {
    let i = 0;
    let next = chunks[0];
    while (next !== undefined) {
      const start = next.offset;
      let end = start;
      for (; next !== undefined && next.offset === end; next = chunks[++i]) end += next.size;
      try {
        platformIo.preallocate(part.fd, start, end - start);
      } catch (err) {
        throw toTeleportError(err, `reserving ${end - start} bytes for ${finalPath}`);
      }
    }
  }

  /** Punches a hole, where an interrupted download of an older version may have had data. */
  clearRange(part: PartFile, start: number, end: number): void {
    platformIo.zeroRange(part.fd, start, end - start);
  }

  /**
   * Metadata, close, rename: the file appears under its name only now, complete and verified.
   * `size`: truncate to the file's size first (a resumed download may be longer, a sparse file
   * may end in a hole nothing was written to). `beforeRename` may throw to stop it. Returns
   * whether extended attributes were set. The part file is closed whatever happens.
   */
  commit(
    part: PartFile,
    finalPath: string,
    file: FileMetadata,
    size: boolean,
    beforeRename: () => void,
  ): boolean {
    const { entry } = file;
    try {
      if (size) ftruncateSync(part.fd, entry.size);
      fchmodSync(part.fd, entry.mode & 0o777);
      futimesSync(part.fd, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
    } finally {
      closeSync(part.fd);
    }
    const xattrsSet = file.xattrs !== undefined && setXattrs(part.path, file.xattrs);
    beforeRename();
    commitPath(part.path, finalPath);
    return xattrsSet;
  }

  /** The old copy already holds every byte: only its mode, mtime and attributes may need setting. */
  keepOldCopy(finalPath: string, file: FileMetadata): KeptCopy {
    const { entry, xattrs } = file;
    const stats = lstatSync(finalPath, { bigint: true });
    const sameMode = (Number(stats.mode) & 0o777) === (entry.mode & 0o777);
    const sameTime = Math.abs(Number(stats.mtimeNs / 1000n) / 1000 - entry.mtimeMs) < 1;
    const sameXattrs = xattrs === undefined || sameAttributes(platformIo.readXattrs(finalPath), xattrs);
    if (sameMode && sameTime && sameXattrs) return "as-it-was";
    chmodSync(finalPath, entry.mode & 0o777);
    utimesSync(finalPath, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
    if (sameXattrs || xattrs === undefined) return "metadata-set";
    return setXattrs(finalPath, xattrs) ? "metadata-and-xattrs-set" : "metadata-set";
  }
}

/** Sets `xattrs` on `path`; false where this machine cannot. */
function setXattrs(path: string, xattrs: readonly Xattr[]): boolean {
  try {
    return platformIo.writeXattrs(path, xattrs) && xattrs.length > 0;
  } catch (err) {
    throw toTeleportError(err, `setting extended attributes of ${path}`);
  }
}

/** Whether `current` (read from a file; undefined: unreadable) holds exactly `wanted`. */
function sameAttributes(current: readonly Xattr[] | undefined, wanted: readonly Xattr[]): boolean {
  if (current === undefined || current.length !== wanted.length) return false;
  const byName = new Map(current.map((xattr) => [xattr.name, xattr.value]));
  return wanted.every((xattr) => byName.get(xattr.name)?.equals(xattr.value) === true);
}

/** Whether process `pid` is running (as far as this user can tell). */
export function isRunning(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
