/**
 * The destination folder: where a file is written (its part file), committed under its name,
 * linked, and given its metadata. Paths come from the host and were checked by `splitWirePath`;
 * here we also make sure we never write through a symlink, even one a local user puts in place
 * of a folder mid-pull: every folder of the walk is held open (opened beneath its parent, never
 * through a symlink) and every name is made relative to it (platform/directory-io.ts). Files are
 * created under fresh part-file names with O_EXCL and renamed into place only when complete and
 * verified; hard links go only to files this pull committed; symlink targets are checked against
 * the disk (symlink-target.ts); modes from the host get the umask and never group or other write.
 *
 * These calls are synchronous, like every per-file call of a pull: each takes a few microseconds
 * in the kernel, far less than a round trip through libuv's thread pool (docs/decisions.md,
 * "Synchronous destination calls").
 */
import {
  type BigIntStats,
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  ftruncateSync,
  futimesSync,
  unlinkSync,
} from "node:fs";
import { basename, dirname, join, relative, sep } from "node:path";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { directoryIo, type NameStat, type OpenFolder, openTopFolder } from "../platform/directory-io.js";
import { platformIo } from "../platform/io.js";
import type { StateFolder } from "../store/state-folder.js";
import type { Entry, Xattr } from "../wire/messages.js";
import { CommittedFiles } from "./committed-files.js";
import { copyCommittedFile } from "./copy-file.js";
import { modeFromHost, sameAttributes, setXattrs } from "./metadata.js";
import { isRunning, partFileWriter, partNameFor } from "./part-names.js";
import { FileReservation, ReservationBudget } from "./reservation.js";
import { checkSymlinkTarget, type NameKind, nameKind } from "./symlink-target.js";

const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
/** Read and write for the owner: what a part file needs while it is written. */
const OWNER_ONLY = 0o600;

function errorCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

function sameFile(a: NameStat | undefined, b: { dev: number; ino: number }): boolean {
  return a !== undefined && a.dev === b.dev && a.ino === b.ino;
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
  /** The mode it was created with; undefined for one an interrupted pull created. */
  readonly mode?: number | undefined;
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

/** A name of the destination: the folder holding it, open, and the name in it. */
interface Place {
  readonly folder: OpenFolder;
  readonly name: string;
}

export interface DestinationOptions {
  /** The destination folder, absolute; it exists before the walk starts. */
  readonly root: string;
  /**
   * `root` already open, held by the caller (who closes it): it is used as it is, never opened
   * again by its path, which a local user may have changed since (an upload's folder).
   */
  readonly rootFolder?: OpenFolder | undefined;
  /** Whether a part file is a download the index keeps for resuming (never removed as a leftover). */
  readonly isKeptDownload: (path: string) => boolean;
  /** Whether the host may send hard links (Feature.HARD_LINKS): committed files are then remembered. */
  readonly hardLinks: boolean;
  /** A folder nothing is ever written into, under any name: a host's own, for an upload (PullOptions). */
  readonly stateFolder?: StateFolder | undefined;
}

export class Destination {
  readonly #root: string;
  /** The caller's descriptor of the root, when it gave one: used, never closed here. */
  readonly #heldRoot: OpenFolder | undefined;
  readonly #isKeptDownload: (path: string) => boolean;
  /** The folders held open, by local path; the root's is opened first. */
  readonly #folders = new Map<string, OpenFolder>();
  /** Files this pull committed (with hard links), by final path: the only targets a link may have. */
  readonly #committed: CommittedFiles | undefined;
  /** Symlinks this pull made, which a later symlink's target may go through. */
  readonly #symlinks = new Set<string>();
  readonly #reservations = new ReservationBudget();
  readonly #stateFolder: StateFolder | undefined;

  constructor(options: DestinationOptions) {
    this.#root = options.root;
    this.#heldRoot = options.rootFolder;
    this.#isKeptDownload = options.isKeptDownload;
    this.#committed = options.hardLinks ? new CommittedFiles() : undefined;
    this.#stateFolder = options.stateFolder;
  }

  /** Closes every folder still held open; idempotent. */
  close(): void {
    for (const folder of this.#folders.values()) if (folder !== this.#heldRoot) closeSync(folder.fd);
    this.#folders.clear();
  }

  /** Creates a folder if missing; true if it was created (so it holds nothing yet). */
  makeDirectory(localPath: string): boolean {
    const { folder, name } = this.#place(localPath);
    let created = true;
    try {
      directoryIo.makeFolder(folder, name, 0o700);
    } catch (err) {
      if (errorCode(err) !== "EEXIST") throw toTeleportError(err, `creating ${localPath}`);
      created = false;
    }
    this.#forget(localPath);
    this.#folders.set(localPath, this.#openFolder(folder, name, localPath));
    return created;
  }

  /**
   * Makes the symlink `localPath` -> `target` with the host's mtime (its own, as rsync -a keeps
   * it), made under a part name and renamed into place. The same symlink left by an earlier
   * pull is kept as it was, its time set only if it differs.
   */
  makeSymlink(target: string, localPath: string, mtimeMs: number): void {
    const at = this.#components(dirname(localPath));
    checkSymlinkTarget(this.#components(localPath).join("/"), at, target, (components) =>
      this.#kindOf(components),
    );
    const { folder, name } = this.#place(localPath);
    const existing = directoryIo.readSymlink(folder, name);
    if (existing?.target === target) {
      if (Math.abs(existing.mtimeMs - mtimeMs) >= 1) setSymlinkTime({ folder, name }, mtimeMs, localPath);
      this.#symlinks.add(localPath);
      return;
    }
    const part = partNameFor(name);
    try {
      directoryIo.symlink(target, folder, part);
    } catch (err) {
      throw toTeleportError(err, `creating symlink ${localPath}`);
    }
    try {
      setSymlinkTime({ folder, name: part }, mtimeMs, localPath);
    } catch (err) {
      this.#unlinkQuietly(folder, part);
      throw err;
    }
    this.#rename(folder, part, name, localPath);
    this.#symlinks.add(localPath);
  }

  /**
   * Makes `localPath` another name of the file this pull committed at `existingPath` (a copy
   * where the file system has no hard links), replacing what was there in one rename. Anything
   * else at `existingPath` is refused: a host must not link a file of ours into the pull.
   */
  link(existingPath: string, localPath: string): void {
    const identity = this.#committed?.identityOf(existingPath);
    if (identity === undefined)
      throw new TeleportError(ErrorCode.PATH_ESCAPE, `${existingPath} is not a file this pull wrote`);
    const source = this.#place(existingPath);
    const { folder, name } = this.#place(localPath);
    // Already that file (a re-pull): rename would do nothing and leave the new name behind.
    if (sameFile(directoryIo.stat(folder, name), identity)) return;
    const part = partNameFor(name);
    try {
      directoryIo.link(source.folder, source.name, folder, part);
    } catch (err) {
      const code = errorCode(err);
      if (code !== "EPERM" && code !== "EMLINK" && code !== "EXDEV" && code !== "ENOTSUP") throw err;
      copyCommittedFile(source, identity, { folder, name: part });
      this.#rename(folder, part, name, localPath);
      return;
    }
    // linkat links whatever has the name now: it must still be the file committed there.
    if (!sameFile(directoryIo.stat(folder, part), identity)) {
      this.#unlinkQuietly(folder, part);
      throw new TeleportError(ErrorCode.PATH_ESCAPE, `${existingPath} changed before it was linked`);
    }
    this.#rename(folder, part, name, localPath);
  }

  /**
   * A folder gets its mode and mtime last, since creating entries inside it changes its mtime;
   * it is closed then. The destination itself keeps its own.
   */
  setFolderMetadata(localPath: string, entry: Entry): void {
    if (localPath === this.#root) return;
    const folder = this.#folders.get(localPath) ?? this.#folderAt(localPath);
    try {
      fchmodSync(folder.fd, modeFromHost(entry.mode));
      futimesSync(folder.fd, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
    } finally {
      this.#forget(localPath);
    }
  }

  /**
   * Whether `path` in `folder` may be an old copy: false only if the folder's listing says no.
   * The listing, made once per folder, also removes the part files that killed pulls left there.
   */
  mayExist(listing: FolderListing, path: string): boolean {
    if (listing.names === undefined) {
      let names: string[] | null;
      let folder: OpenFolder | undefined;
      try {
        folder = this.#folderAt(listing.localPath);
        names = directoryIo.list(folder);
      } catch {
        names = null;
      }
      if (names !== null && folder !== undefined) this.#removeLeftovers(folder, names);
      listing.names = names !== null && names.length <= MAX_LISTED_NAMES ? new Set(names) : null;
    }
    return listing.names === null || listing.names.has(path.slice(path.lastIndexOf("/") + 1));
  }

  /**
   * Removes part files whose writer is no longer running, except downloads the index keeps for
   * resuming: a pull killed between creating a file and journaling it, or writing a file too
   * small to journal, leaves one behind.
   */
  #removeLeftovers(folder: OpenFolder, names: readonly string[]): void {
    for (const name of names) {
      const writer = partFileWriter(name);
      if (writer === undefined || writer === process.pid || isRunning(writer)) continue;
      if (this.#isKeptDownload(join(folder.path, name))) continue;
      this.#unlinkQuietly(folder, name);
    }
  }

  /**
   * Creates a new part file next to `finalPath`; O_EXCL|O_NOFOLLOW so nothing there is reused.
   * It gets the mode the host gave the file (`hostMode`) when that lets us read and write it, as
   * rsync's temporary files do: the commit then needs no chmod.
   */
  createPartFile(finalPath: string, hostMode?: number): PartFile {
    const { folder, name } = this.#place(finalPath);
    const part = partNameFor(name);
    const path = finalPath.slice(0, finalPath.length - name.length) + part;
    const flags = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW;
    const wanted = hostMode === undefined ? OWNER_ONLY : modeFromHost(hostMode);
    const mode = (wanted & OWNER_ONLY) === OWNER_ONLY ? wanted : OWNER_ONLY;
    try {
      return { path, fd: directoryIo.openFile(folder, part, flags, mode), mode };
    } catch (err) {
      throw toTeleportError(err, `creating ${path}`);
    }
  }

  /** Opens an interrupted pull's part file to go on writing it; undefined if it cannot be opened. */
  reopenPartFile(path: string): PartFile | undefined {
    // Read and write: local copies are read back to be verified (local-copies.ts).
    try {
      const { folder, name } = this.#place(path);
      return { path, fd: directoryIo.openFile(folder, name, constants.O_RDWR | O_NOFOLLOW, 0) };
    } catch {
      return undefined;
    }
  }

  /** Blocks for `part` reserved as its data arrives, within the pull's allowance (reservation.ts). */
  reservation(part: PartFile, finalPath: string): FileReservation {
    return new FileReservation(this.#reservations, (offset, length) => {
      try {
        platformIo.preallocate(part.fd, offset, length);
      } catch (err) {
        throw toTeleportError(err, `reserving ${length} bytes for ${finalPath}`);
      }
    });
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
    let identity: { dev: number; ino: number } | undefined;
    let xattrsSet: boolean;
    try {
      if (size) ftruncateSync(part.fd, entry.size);
      // Before the mode, which may leave the file read-only to us.
      xattrsSet = file.xattrs !== undefined && setXattrs(part.fd, file.xattrs, part.path);
      const mode = modeFromHost(entry.mode);
      if (part.mode !== mode) fchmodSync(part.fd, mode);
      futimesSync(part.fd, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
      if (this.#committed !== undefined) identity = fstatSync(part.fd);
    } finally {
      closeSync(part.fd);
    }
    beforeRename();
    const { folder, name } = this.#place(finalPath);
    const from = this.#place(part.path);
    this.#rename(from.folder, from.name, name, finalPath, folder);
    if (identity !== undefined) this.#committed?.remember(finalPath, identity);
    return xattrsSet;
  }

  /**
   * The old copy at `finalPath`, opened for reading relative to its folder (never through a
   * symlink, never blocking on a FIFO), if it is a regular file; its descriptor is the caller's to close.
   */
  openOldCopy(finalPath: string): { fd: number; stats: BigIntStats } | undefined {
    let fd: number;
    try {
      const { folder, name } = this.#place(finalPath);
      fd = directoryIo.openFile(folder, name, constants.O_RDONLY | O_NOFOLLOW | constants.O_NONBLOCK, 0);
    } catch {
      return undefined; // no old copy, or not one to read: the file is fetched
    }
    const stats = fstatSync(fd, { bigint: true });
    if (stats.isFile()) return { fd, stats };
    closeSync(fd);
    return undefined;
  }

  /**
   * The old copy already holds every byte: only its mode, mtime and attributes may need setting.
   * It counts as committed by this pull (a hard link may name it).
   */
  keepOldCopy(finalPath: string, file: FileMetadata): KeptCopy {
    const { entry, xattrs } = file;
    const { folder, name } = this.#place(finalPath);
    const fd = directoryIo.openFile(folder, name, constants.O_RDONLY | O_NOFOLLOW | constants.O_NONBLOCK, 0);
    try {
      const stats = fstatSync(fd, { bigint: true });
      // Its bytes are what the host announced: a name this pull may link to, as if committed.
      this.#committed?.remember(finalPath, { dev: Number(stats.dev), ino: Number(stats.ino) });
      const sameMode = (Number(stats.mode) & 0o777) === modeFromHost(entry.mode);
      const sameTime = Math.abs(Number(stats.mtimeNs / 1000n) / 1000 - entry.mtimeMs) < 1;
      const sameXattrs = xattrs === undefined || sameAttributes(platformIo.readXattrs(fd), xattrs);
      if (sameMode && sameTime && sameXattrs) return "as-it-was";
      fchmodSync(fd, modeFromHost(entry.mode));
      futimesSync(fd, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
      if (sameXattrs || xattrs === undefined) return "metadata-set";
      return setXattrs(fd, xattrs, finalPath) ? "metadata-and-xattrs-set" : "metadata-set";
    } finally {
      closeSync(fd);
    }
  }

  /** The folder holding `path` (absolute and normalized), held open, and its name in it. */
  #place(path: string): Place {
    // dirname and basename by hand: paths here are normalized, and this runs several times per file.
    const slash = path.lastIndexOf("/");
    return { folder: this.#folderAt(slash > 0 ? path.slice(0, slash) : "/"), name: path.slice(slash + 1) };
  }

  /**
   * The open folder at `localPath`: the walk's own, or opened beneath the nearest open one, a
   * component at a time, never through a symlink.
   */
  #folderAt(localPath: string): OpenFolder {
    const open = this.#folders.get(localPath);
    if (open !== undefined) return open;
    if (localPath === this.#root) {
      // A held root is the caller's to check (and close): an upload's folder, push/upload-folder.ts.
      const root = this.#heldRoot ?? this.#refuseStateFolder(openTopFolder(this.#root));
      this.#folders.set(this.#root, root);
      return root;
    }
    const parentPath = dirname(localPath);
    if (parentPath === localPath || !localPath.startsWith(this.#root + sep))
      throw new TeleportError(ErrorCode.PATH_ESCAPE, `${localPath} is outside ${this.#root}`);
    const folder = this.#openFolder(this.#folderAt(parentPath), basename(localPath), localPath);
    this.#folders.set(localPath, folder);
    return folder;
  }

  #openFolder(parent: OpenFolder, name: string, localPath: string): OpenFolder {
    return this.#refuseStateFolder(openFolderBeneath(parent, name, localPath));
  }

  /** Returns `folder`, unless it is the state folder: then it is closed, and refused as an escape. */
  #refuseStateFolder(folder: OpenFolder): OpenFolder {
    if (this.#stateFolder === undefined || !this.#stateFolder.is(fstatSync(folder.fd))) return folder;
    closeSync(folder.fd);
    throw new TeleportError(ErrorCode.PATH_ESCAPE, `${folder.path} is not a folder this host writes into`);
  }

  /** Closes the folder at `localPath` if it is held open. */
  #forget(localPath: string): void {
    const folder = this.#folders.get(localPath);
    if (folder === undefined) return;
    this.#folders.delete(localPath);
    if (folder !== this.#heldRoot) closeSync(folder.fd);
  }

  /** The components of `localPath` under the destination. */
  #components(localPath: string): string[] {
    return relative(this.#root, localPath)
      .split(sep)
      .filter((part) => part !== "");
  }

  /** What the components name under the destination (its folders opened, never through a symlink). */
  #kindOf(components: readonly string[]): NameKind {
    const localPath = join(this.#root, ...components);
    try {
      const { folder, name } = this.#place(localPath);
      return nameKind(directoryIo.stat(folder, name)?.mode, this.#symlinks.has(localPath));
    } catch {
      return "other";
    }
  }

  /** Atomically puts a finished file, link or symlink under its name (replacing an older copy). */
  #rename(from: OpenFolder, part: string, name: string, finalPath: string, to: OpenFolder = from): void {
    try {
      directoryIo.rename(from, part, to, name);
    } catch (err) {
      this.#unlinkQuietly(from, part);
      throw toTeleportError(err, `renaming into ${finalPath}`);
    }
  }

  #unlinkQuietly(folder: OpenFolder, name: string): void {
    try {
      directoryIo.unlink(folder, name);
    } catch {
      // already gone
    }
  }
}

/** Sets the times of the symlink at `place` itself (named `localPath` in errors). */
function setSymlinkTime(place: Place, mtimeMs: number, localPath: string): void {
  try {
    directoryIo.setSymlinkTimes(place.folder, place.name, mtimeMs);
  } catch (err) {
    throw toTeleportError(err, `setting the time of symlink ${localPath}`);
  }
}

/** A folder opened beneath `parent`, never through a symlink; a name that is no folder is refused. */
function openFolderBeneath(parent: OpenFolder, name: string, localPath: string): OpenFolder {
  try {
    return directoryIo.openFolder(parent, name);
  } catch (err) {
    const code = errorCode(err);
    if (code !== "ELOOP" && code !== "ENOTDIR") throw toTeleportError(err, `opening ${localPath}`);
    throw new TeleportError(
      ErrorCode.UNSAFE_NAME,
      `${localPath} exists and is not a folder; not writing through it`,
    );
  }
}
