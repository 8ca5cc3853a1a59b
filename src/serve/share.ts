/**
 * The shared folder, read-only. Everything is opened beneath the root's descriptor (see
 * platform/open-beneath.ts), never by a path string checked first and opened after: a folder a
 * local user renames and replaces by a symlink mid-walk, or a file swapped for a symlink or a
 * FIFO, is refused, not followed. Walks stream depth-first through folder descriptors, one open
 * per level, so a 1M-file tree never sits in memory. Per-entry calls (lstat, open, readlink) are
 * synchronous: see engine/file-io.ts.
 */
import {
  closeSync,
  constants,
  type Dir,
  type Dirent,
  fstatSync,
  lstatSync,
  opendirSync,
  openSync,
  type Stats,
} from "node:fs";
import { realpath } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { closeQuietly } from "../engine/file-io.js";
import { ErrorCode, isTeleportError, TeleportError, toTeleportError } from "../errors.js";
import { beneath, type FolderHandle } from "../platform/open-beneath.js";
import type { StateFolder } from "../store/state-folder.js";
import { EntryKind, type SkipReason } from "../wire/messages.js";
import { joinWirePath, splitWirePath } from "../wire/path.js";
import { ServedPaths } from "./served-paths.js";
import {
  describeEntry,
  describeFile,
  type OpenedFile,
  quietly,
  refuseEscapeByName,
  regularFile,
  type ShareEntry,
  sameIdentity,
  skipReasonOf,
} from "./share-entry.js";

export type { OpenedFile, ShareEntry };

/** A folder beneath the top of a walk that could not be listed. */
export interface WalkFailure {
  path: string;
  failure: TeleportError;
}

/** An entry the share does not serve (WalkOptions.reportSkipped). */
export interface WalkSkip {
  path: string;
  skipped: SkipReason;
}

export type WalkItem = ShareEntry | WalkFailure | WalkSkip;

export function isWalkFailure<T extends object>(item: T | WalkFailure): item is WalkFailure {
  return "failure" in item;
}

export function isWalkSkip<T extends object>(item: T | WalkSkip): item is WalkSkip {
  return "skipped" in item;
}

export interface WalkOptions {
  signal?: AbortSignal | undefined;
  /** Open each file as it is met (ShareEntry.file). */
  openFiles?: boolean;
  /** Yield a WalkSkip for each entry not served, instead of passing over it. */
  reportSkipped?: boolean;
  /** Each folder's entries in order of their names (a folder's names are read before its first entry). */
  sorted?: boolean;
  /**
   * What the walk leaves out (a pull's `--exclude`, src/filter), asked before anything is opened:
   * an excluded folder is not descended. The top of the walk is never asked.
   */
  exclude?: ((wirePath: string, isFolder: boolean) => boolean) | undefined;
}

export interface ShareOptions {
  /**
   * Names never listed, in any folder: a host taking uploads leaves out the part files of
   * uploads under way, which no reader may see and no walk may index as finished files.
   */
  leaveOut?: (name: string) => boolean;
  /**
   * The host's own state folder: never served, wherever it lies in the share (ServedPaths); a
   * share of it, or of anything inside it, is refused.
   */
  stateFolder?: StateFolder | undefined;
}

/** A folder held open and being listed. */
interface OpenFolder {
  handle: FolderHandle;
  dir: Dir;
}

export class Share {
  readonly root: string;
  readonly name: string;
  /**
   * A share of one file (`host FILE`): the folder holding it is the root, and this is the one
   * name in it that is served; every other name is NOT_FOUND to every request.
   */
  readonly only: string | undefined;
  readonly #rootFolder: FolderHandle;
  #closed = false;
  /** Names the share never lists (ShareOptions.leaveOut). */
  readonly #leaveOut: ((name: string) => boolean) | undefined;
  /** Which paths are served: the one-file share's rule, and never the state folder. */
  readonly #served: ServedPaths;

  private constructor(root: string, rootFd: number, only: string | undefined, options: ShareOptions = {}) {
    this.root = root;
    this.only = only;
    this.name = only ?? basename(root);
    this.#rootFolder = { fd: rootFd, path: root };
    this.#leaveOut = options.leaveOut;
    this.#served = new ServedPaths(root, only, options.stateFolder);
  }

  /** The share of the folder or the one file at `path`. */
  static async open(path: string, options: ShareOptions = {}): Promise<Share> {
    let real: string;
    try {
      real = await realpath(path);
    } catch (err) {
      throw toTeleportError(err, `shared folder ${path}`);
    }
    options.stateFolder?.refuseShareOf(real);
    try {
      return new Share(real, openSync(real, beneath.folderFlags), undefined, options);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOTDIR")
        throw toTeleportError(err, `shared folder ${path}`);
    }
    if (!lstatSync(real).isFile())
      throw new TeleportError(ErrorCode.NOT_A_FILE, `${path} is not a regular file or a folder`);
    const root = dirname(real);
    try {
      return new Share(root, openSync(root, beneath.folderFlags), basename(real), options);
    } catch (err) {
      throw toTeleportError(err, `the folder of ${path}`);
    }
  }

  /**
   * The share of a folder another thread opened (`rootFd`, the caller's own descriptor of it,
   * which the share now owns): a host thread serves the very folder the host opened, whatever
   * has been renamed since, and the same one name of it for a share of one file.
   */
  static adopt(root: string, rootFd: number, only?: string, options: ShareOptions = {}): Share {
    return new Share(root, rootFd, only, options);
  }

  /** What is shared, by its real path: the folder, or the one file. */
  get source(): string {
    return this.only === undefined ? this.root : join(this.root, this.only);
  }

  /**
   * Whether a wire path, through real folders (no symlink), names something served: false for a
   * name a share of one file does not serve, and for the host's state folder and what it holds.
   */
  serves(wirePath: string): boolean {
    return this.#served.serves(wirePath);
  }

  /** Where the host's state folder lies in the share now, as a wire path; undefined if not in it. */
  stateFolderPath(): string | undefined {
    return this.#served.stateFolderPath();
  }

  /** The root's descriptor, for a host thread to duplicate. */
  get rootFd(): number {
    return this.#root().fd;
  }

  /**
   * The root, while the share is open. A request still under way when its host closes fails here,
   * never reaching a descriptor whose number may by then be another folder's.
   */
  #root(): FolderHandle {
    if (this.#closed) throw new TeleportError(ErrorCode.CANCELLED, "the share is closed");
    return this.#rootFolder;
  }

  /** Closes the root (when its host or pusher stops); later calls do nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeSync(this.#rootFolder.fd);
  }

  /** Where a wire path lies under the share root, without resolving symlinks (a name, not an access check). */
  localPath(wirePath: string): string {
    return join(this.root, ...splitWirePath(wirePath));
  }

  /**
   * Opens the regular file at a wire path for reading, beneath the root with no symlink on the
   * way (GET_CHUNKS and READ_RANGE name files as the walk listed them, through real folders).
   */
  openFile(wirePath: string): OpenedFile {
    this.#served.refuse(wirePath);
    let fd: number;
    try {
      fd = beneath.open(this.#root(), splitWirePath(wirePath).join("/"), constants.O_RDONLY, {
        within: this.root,
      });
    } catch (err) {
      if (isTeleportError(err, ErrorCode.NOT_FOUND)) refuseEscapeByName(this.root, wirePath);
      throw err;
    }
    return regularFile(this.#served.checkReached(wirePath, fd), wirePath);
  }

  /**
   * The folder at a "/"-separated path ("" the root itself), opened beneath the root with no
   * symlink on the way, to look names up in (see FileLookup); the caller closes it.
   */
  openFolder(relPath: string): FolderHandle {
    this.#served.refuse(relPath);
    const opened = beneath.open(this.#root(), relPath, beneath.folderFlags, { within: this.root });
    return { fd: this.#served.checkReached(relPath, opened), path: join(this.root, relPath) };
  }

  stat(wirePath: string): ShareEntry {
    const top = this.#openTop(wirePath);
    try {
      return this.#describeTop(wirePath, top);
    } finally {
      closeQuietly(top.fd);
    }
  }

  /**
   * A wire path as the top of a listing: opened beneath the root (O_PATH), following symlinks
   * only while they stay inside, so a request may name a folder through an inside symlink.
   */
  #openTop(wirePath: string): FolderHandle {
    this.#served.refuse(wirePath);
    const relPath = splitWirePath(wirePath).join("/");
    try {
      const fd = beneath.open(this.#root(), relPath, beneath.folderFlags & ~constants.O_DIRECTORY, {
        within: this.root,
        // A share of one file: not even a symlink inside, put in the file's place, is followed
        // ("" is the root held open, which the portable way reaches through a /proc link).
        followInside: this.only === undefined || relPath === "",
      });
      return { fd, path: join(this.root, relPath) };
    } catch (err) {
      // Through a symlink that leaves the share, a missing path is an escape, not "not found":
      // otherwise a client could probe which files exist outside.
      if (isTeleportError(err, ErrorCode.NOT_FOUND)) refuseEscapeByName(this.root, wirePath);
      throw toTeleportError(err, `"${wirePath}"`);
    }
  }

  #describeTop(wirePath: string, top: FolderHandle): ShareEntry {
    const stats = fstatSync(top.fd);
    this.#served.refuseOpened(wirePath, top, stats); // the state folder, by a symlink or any name
    const found = describeEntry(this.root, wirePath, top.path, stats, beneath.pathAt(top, ""));
    if (found === null)
      throw new TeleportError(ErrorCode.UNSUPPORTED_TYPE, `"${wirePath}" is not a file, folder or symlink`);
    return found;
  }

  /** The entries directly inside a folder (or the entry itself for a file). */
  *list(wirePath: string, options: Omit<WalkOptions, "reportSkipped"> = {}): Generator<ShareEntry> {
    const { found, folder } = this.#top(wirePath, false);
    if (folder === undefined) {
      yield found;
      return;
    }
    try {
      for (const child of this.#children(found, folder.handle, folder.dir, options))
        if (!isWalkSkip(child)) yield child;
    } finally {
      closeQuietly(folder.handle.fd);
    }
  }

  /**
   * The entry and, for a folder, everything beneath it, depth-first: a folder's subtree follows
   * it. A folder beneath the top that cannot be listed is a WalkFailure and the walk goes on.
   * Synchronous, as every call it makes is: a promise per entry and per folder level cost the
   * walking thread a fifth of its garbage (docs/decisions.md, "The host's walk is synchronous").
   */
  *walk(wirePath: string, options: WalkOptions = {}): Generator<WalkItem> {
    const { found, folder } = this.#top(wirePath, options.openFiles === true);
    if (folder === undefined) {
      yield found;
      return;
    }
    let descended = false;
    try {
      yield found;
      descended = true; // from here #walkChildren closes the folder
      yield* this.#walkChildren(found, folder.handle, folder.dir, options);
    } finally {
      if (!descended) {
        closeQuietly(folder.handle.fd);
        quietly(() => folder.dir.closeSync());
      }
    }
  }

  /**
   * The top of a listing: its entry and, for a folder, its handle and listing, which the caller
   * closes; a file's walk with `openFiles` opens it.
   */
  #top(wirePath: string, openFiles: boolean): { found: ShareEntry; folder?: OpenFolder } {
    const top = this.#openTop(wirePath);
    try {
      const found = this.#describeTop(wirePath, top);
      if (found.entry.kind === EntryKind.DIRECTORY)
        return { found, folder: { handle: top, dir: this.#listFolder(found, top) } };
      if (found.entry.kind === EntryKind.FILE && openFiles) found.file = this.#openTopFile(wirePath, top);
      closeQuietly(top.fd);
      return { found };
    } catch (err) {
      closeQuietly(top.fd);
      throw err;
    }
  }

  /** The top of a walk, a file, opened for reading: it must be the file `top` holds. */
  #openTopFile(wirePath: string, top: FolderHandle): OpenedFile | TeleportError {
    try {
      const opened = this.openFile(wirePath);
      if (sameIdentity(opened.identity, fstatSync(top.fd))) return opened;
      closeSync(opened.fd);
      return new TeleportError(ErrorCode.FILE_CHANGED, `"${wirePath}" changed while it was being listed`);
    } catch (err) {
      return toTeleportError(err);
    }
  }

  /** The folder open as `handle`, listed as `dir`, and its subtree; closes `handle` when done. */
  *#walkChildren(
    folder: ShareEntry,
    handle: FolderHandle,
    dir: Dir,
    options: WalkOptions,
  ): Generator<WalkItem> {
    try {
      for (const child of this.#children(folder, handle, dir, options)) {
        yield child;
        if (isWalkSkip(child) || child.entry.kind !== EntryKind.DIRECTORY) continue;
        let childHandle: FolderHandle | undefined;
        let childDir: Dir;
        try {
          childHandle = this.#openChildFolder(handle, child);
          childDir = this.#listFolder(child, childHandle);
        } catch (err) {
          if (childHandle !== undefined) closeQuietly(childHandle.fd);
          yield { path: child.entry.path, failure: toTeleportError(err) };
          continue;
        }
        yield* this.#walkChildren(child, childHandle, childDir, options);
      }
    } finally {
      closeQuietly(handle.fd);
    }
  }

  /** A folder met in a walk, opened beneath its parent: a symlink swapped in its place is refused. */
  #openChildFolder(parent: FolderHandle, child: ShareEntry): FolderHandle {
    const name = basename(child.absolutePath);
    const fd = beneath.open(parent, name, beneath.folderFlags, { within: this.root });
    return { fd, path: child.absolutePath };
  }

  /**
   * Listed synchronously, LISTING_BATCH entries a system call: a promise per entry through fs.Dir
   * cost the host more than the rest of a walk of a source tree (lstat and open are synchronous too).
   */
  #listFolder(folder: ShareEntry, handle: FolderHandle): Dir {
    try {
      return opendirSync(beneath.pathAt(handle, ""), { bufferSize: LISTING_BATCH });
    } catch (err) {
      throw toTeleportError(err, `listing "${folder.entry.path}"`);
    }
  }

  /** The entries of `folder`, listed as `dir`, which is closed when they end or the caller stops. */
  *#children(
    folder: ShareEntry,
    handle: FolderHandle,
    dir: Dir,
    options: WalkOptions,
  ): Generator<ShareEntry | WalkSkip> {
    try {
      for (const dirent of options.sorted ? sortedByName(dir) : entriesOf(dir)) {
        options.signal?.throwIfAborted();
        if (this.#leaveOut?.(dirent.name) === true) continue;
        const at = beneath.pathAt(handle, dirent.name);
        const absolutePath = join(folder.absolutePath, dirent.name);
        const wirePath = joinWirePath(folder.entry.path, dirent.name);
        if (!this.#served.serves(wirePath)) continue;
        if (options.exclude?.(wirePath, isFolder(dirent, at))) continue;
        if (options.openFiles && dirent.isFile()) {
          const opened = this.#openListedFile(handle, dirent.name, wirePath, absolutePath, at);
          if (opened !== undefined) {
            yield opened;
            continue;
          }
        }
        const stats = quietly(() => lstatSync(at));
        if (stats === undefined) continue; // removed while we were listing
        if (this.#served.isStateFolder(stats)) continue; // under whatever name it has here
        const found = describeEntry(this.root, wirePath, absolutePath, stats, at);
        if (found === null) {
          if (options.reportSkipped) yield { path: wirePath, skipped: skipReasonOf(stats) };
          continue;
        }
        if (found.entry.kind === EntryKind.FILE && options.openFiles)
          found.file = this.#openChildFile(handle, dirent.name, stats, wirePath);
        yield found;
      }
    } finally {
      quietly(() => dir.closeSync());
    }
  }

  /**
   * A file the listing says is one, opened first and described from its descriptor: one system
   * call fewer than lstat then open. Undefined where it cannot be (unreadable, no longer a
   * regular file): then lstat says what it is.
   */
  #openListedFile(
    handle: FolderHandle,
    name: string,
    wirePath: string,
    absolutePath: string,
    at: string,
  ): ShareEntry | undefined {
    const opened = quietly(() =>
      beneath.openDescribed(handle, name, constants.O_RDONLY, { within: this.root }),
    );
    if (opened === undefined) return undefined;
    const { fd, stats } = opened;
    if ((stats.mode & constants.S_IFMT) !== constants.S_IFREG) {
      closeQuietly(fd);
      return undefined;
    }
    const found = describeFile(wirePath, absolutePath, stats, at);
    found.file = { fd, identity: stats, size: stats.size };
    return found;
  }

  /** A file met in a walk, opened beneath its folder; it must be the one lstat described. */
  #openChildFile(
    handle: FolderHandle,
    name: string,
    stats: Stats,
    wirePath: string,
  ): OpenedFile | TeleportError {
    try {
      const fd = beneath.open(handle, name, constants.O_RDONLY, { within: this.root });
      const opened = regularFile(fd, wirePath);
      if (sameIdentity(opened.identity, stats)) return opened;
      closeSync(fd);
      return new TeleportError(ErrorCode.FILE_CHANGED, `"${wirePath}" changed while it was being listed`);
    } catch (err) {
      return toTeleportError(err);
    }
  }
}

/** Entries a folder's listing reads per system call. */
const LISTING_BATCH = 256;

/** A folder's entries as the listing reads them. */
function* entriesOf(dir: Dir): Generator<Dirent> {
  for (let dirent = dir.readSync(); dirent !== null; dirent = dir.readSync()) yield dirent;
}

/** Whether a listed entry is a folder: from the listing's type, else (a file system without d_type) lstat. */
function isFolder(dirent: Dirent, at: string): boolean {
  if (dirent.isDirectory()) return true;
  if (dirent.isFile() || dirent.isSymbolicLink()) return false;
  return quietly(() => lstatSync(at))?.isDirectory() === true;
}

/** A folder's entries in order of their names: all of them read first (GNU ls holds a folder too). */
function sortedByName(dir: Dir): Dirent[] {
  return [...entriesOf(dir)].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
