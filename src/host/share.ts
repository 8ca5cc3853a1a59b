/**
 * The shared folder, read-only. Every path from the network goes through `resolve`, which refuses
 * anything that leads outside the root, through `..`, an absolute path or a symlink. Walks stream
 * depth-first with one open directory handle per level, so a 1M-file tree never sits in memory.
 * Per-entry calls (lstat, realpath, readlink) are synchronous: see engine/file-io.ts.
 */
import { type Dir, lstatSync, readlinkSync, realpathSync, type Stats, statSync } from "node:fs";
import { opendir, realpath, stat } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { type Entry, EntryKind } from "../wire/messages.js";
import { checkLinkTarget, joinWirePath, splitWirePath } from "../wire/path.js";

export interface ShareEntry {
  entry: Entry;
  /** Absolute path on the host (inside the share). */
  absolutePath: string;
  /** For a file with more than one name (hard links): its device and inode, the same for all. */
  inode?: string;
}

/** A folder beneath the top of a walk that could not be listed. */
export interface WalkFailure {
  path: string;
  failure: TeleportError;
}

export type WalkItem = ShareEntry | WalkFailure;

export function isWalkFailure(item: WalkItem): item is WalkFailure {
  return "failure" in item;
}

export class Share {
  readonly root: string;
  readonly name: string;

  private constructor(root: string) {
    this.root = root;
    this.name = basename(root);
  }

  static async open(path: string): Promise<Share> {
    let root: string;
    try {
      root = await realpath(path);
    } catch (err) {
      throw toTeleportError(err, `shared folder ${path}`);
    }
    if (!(await stat(root)).isDirectory())
      throw new TeleportError(ErrorCode.NOT_A_FILE, `${path} is not a folder`);
    return new Share(root);
  }

  /** Where a wire path lies under the share root, without resolving symlinks (a name, not an access check). */
  localPath(wirePath: string): string {
    return join(this.root, ...splitWirePath(wirePath));
  }

  /** Absolute host path for a wire path, following symlinks only while they stay inside the share. */
  resolve(wirePath: string): string {
    const parts = splitWirePath(wirePath);
    let real: string;
    try {
      real = realpathSync.native(join(this.root, ...parts));
    } catch (err) {
      // A missing path reached through a symlink that leaves the share is an escape, not
      // "not found": otherwise a client could probe which files exist outside.
      this.#refuseEscapingAncestor(parts, wirePath);
      throw toTeleportError(err, `"${wirePath}"`);
    }
    if (!this.#contains(real))
      throw new TeleportError(ErrorCode.PATH_ESCAPE, `"${wirePath}" leads outside the share`);
    return real;
  }

  #refuseEscapingAncestor(parts: string[], wirePath: string): void {
    const escapeError = new TeleportError(ErrorCode.PATH_ESCAPE, `"${wirePath}" leads outside the share`);
    const danglingTarget = quietly(() => readlinkSync(join(this.root, ...parts)));
    if (danglingTarget !== undefined) {
      const parent = quietly(() => realpathSync.native(join(this.root, ...parts.slice(0, -1)))) ?? this.root;
      if (!this.#contains(resolve(parent, danglingTarget))) throw escapeError;
    }
    for (let length = parts.length - 1; length > 0; length--) {
      const ancestor = quietly(() => realpathSync.native(join(this.root, ...parts.slice(0, length))));
      if (ancestor === undefined) continue;
      if (!this.#contains(ancestor)) throw escapeError;
      return;
    }
  }

  /** Resolves a wire path to a regular file, refusing folders, devices, FIFOs and sockets. */
  resolveFile(wirePath: string): { absolutePath: string; stats: Stats } {
    const absolutePath = this.resolve(wirePath);
    const stats = statSync(absolutePath);
    if (!stats.isFile()) throw new TeleportError(ErrorCode.NOT_A_FILE, `"${wirePath}" is not a regular file`);
    return { absolutePath, stats };
  }

  stat(wirePath: string): ShareEntry {
    const absolutePath = this.resolve(wirePath);
    const found = this.#describe(wirePath, absolutePath, lstatSync(absolutePath));
    if (found === null)
      throw new TeleportError(ErrorCode.UNSUPPORTED_TYPE, `"${wirePath}" is not a file, folder or symlink`);
    return found;
  }

  /** The entries directly inside a folder (or the entry itself for a file). */
  async *list(wirePath: string, signal?: AbortSignal): AsyncGenerator<ShareEntry> {
    const top = this.stat(wirePath);
    if (top.entry.kind !== EntryKind.DIRECTORY) {
      yield top;
      return;
    }
    yield* this.#children(top, await this.#openFolder(top), signal);
  }

  /**
   * The entry and, for a folder, everything beneath it, depth-first: a folder's subtree follows
   * it. A folder beneath the top that cannot be listed is a WalkFailure and the walk goes on.
   */
  async *walk(wirePath: string, signal?: AbortSignal): AsyncGenerator<WalkItem> {
    const top = this.stat(wirePath);
    yield top;
    if (top.entry.kind === EntryKind.DIRECTORY)
      yield* this.#walkChildren(top, await this.#openFolder(top), signal);
  }

  async *#walkChildren(folder: ShareEntry, dir: Dir, signal?: AbortSignal): AsyncGenerator<WalkItem> {
    for await (const child of this.#children(folder, dir, signal)) {
      yield child;
      if (child.entry.kind !== EntryKind.DIRECTORY) continue;
      let childDir: Dir;
      try {
        childDir = await this.#openFolder(child);
      } catch (err) {
        yield { path: child.entry.path, failure: toTeleportError(err) };
        continue;
      }
      yield* this.#walkChildren(child, childDir, signal);
    }
  }

  async #openFolder(folder: ShareEntry): Promise<Dir> {
    try {
      return await opendir(folder.absolutePath, { bufferSize: 64 });
    } catch (err) {
      throw toTeleportError(err, `listing "${folder.entry.path}"`);
    }
  }

  /** The entries of `folder`, open as `dir`, which is closed when they end or the caller stops. */
  async *#children(folder: ShareEntry, dir: Dir, signal?: AbortSignal): AsyncGenerator<ShareEntry> {
    try {
      for await (const dirent of dir) {
        signal?.throwIfAborted();
        const absolutePath = join(folder.absolutePath, dirent.name);
        const wirePath = joinWirePath(folder.entry.path, dirent.name);
        const stats = quietly(() => lstatSync(absolutePath));
        if (stats === undefined) continue; // removed while we were listing
        const found = this.#describe(wirePath, absolutePath, stats);
        if (found !== null) yield found;
      }
    } finally {
      await dir.close().catch(() => {});
    }
  }

  /** An Entry for a file, folder or inside-pointing symlink; null for anything not served. */
  #describe(wirePath: string, absolutePath: string, stats: Stats): ShareEntry | null {
    const base = { path: wirePath, mode: stats.mode & 0o7777, mtimeMs: stats.mtimeMs, linkTarget: "" };
    if (stats.isFile()) {
      const found: ShareEntry = { absolutePath, entry: { ...base, kind: EntryKind.FILE, size: stats.size } };
      if (stats.nlink > 1) found.inode = inodeKey(absolutePath);
      return found;
    }
    if (stats.isDirectory()) return { absolutePath, entry: { ...base, kind: EntryKind.DIRECTORY, size: 0 } };
    if (stats.isSymbolicLink()) {
      const target = this.#insideLinkTarget(wirePath, absolutePath);
      if (target === null) return null;
      return { absolutePath, entry: { ...base, kind: EntryKind.SYMLINK, size: 0, linkTarget: target } };
    }
    return null; // devices, FIFOs, sockets are never served
  }

  /** The symlink's target as a relative path if it stays inside the share, else null. */
  #insideLinkTarget(wirePath: string, absolutePath: string): string | null {
    let target = readlinkSync(absolutePath);
    if (isAbsolute(target)) {
      if (!this.#contains(target)) return null;
      target = relative(dirname(absolutePath), target) || ".";
    }
    try {
      checkLinkTarget(wirePath, target);
    } catch {
      return null;
    }
    try {
      if (!this.#contains(realpathSync.native(absolutePath))) return null;
    } catch {
      // Dangling but lexically inside: kept, as rsync -l would.
    }
    return target.split(sep).join("/");
  }

  #contains(absolutePath: string): boolean {
    return absolutePath === this.root || absolutePath.startsWith(this.root + sep);
  }
}

/** Device and inode, exactly: inode numbers may exceed 2^53. */
function inodeKey(absolutePath: string): string | undefined {
  const stats = quietly(() => lstatSync(absolutePath, { bigint: true }));
  return stats === undefined ? undefined : `${stats.dev}:${stats.ino}`;
}

/** What `read` returns, or undefined if it throws. */
function quietly<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}
