/**
 * The host's own state folder (TELEPORT_HOME: the identity's private key, the master secret, the
 * chunk index), known by its identity, not its name: a share holding it never serves it, an
 * upload never writes into it (README, "Security model"). The folder is held open from the host's
 * start, so its device and inode, and where it is now, hold whatever it is renamed to, and
 * whatever symlink or other name inside the share leads to it.
 */
import { closeSync, existsSync, fstatSync, openSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { beneath, type FolderHandle } from "../platform/open-beneath.js";

/** What makes a file system entry the one it is, whatever its names. */
export interface Identity {
  dev: number;
  ino: number;
}

export class StateFolder {
  readonly #folder: FolderHandle;
  readonly #identity: Identity;
  #closed = false;

  private constructor(folder: FolderHandle) {
    this.#folder = folder;
    const { dev, ino } = fstatSync(folder.fd);
    this.#identity = { dev, ino };
  }

  /** Holds the state folder at `path` (it exists: the host's identity was made in it). */
  static open(path: string): StateFolder {
    let fd: number;
    try {
      fd = openSync(path, beneath.folderFlags);
    } catch (err) {
      throw toTeleportError(err, `TELEPORT_HOME ${path}`);
    }
    return new StateFolder({ fd, path: realpathSync(path) });
  }

  /** Holds the state folder at `path` where there is one (a pusher's: it may never have made one). */
  static openIfThere(path: string): StateFolder | undefined {
    return existsSync(path) ? StateFolder.open(path) : undefined;
  }

  /** The state folder a host thread is given: its own descriptor of the one the host holds. */
  static adopt(fd: number, path: string): StateFolder {
    return new StateFolder({ fd, path });
  }

  /** The descriptor, for a host thread to duplicate. */
  get fd(): number {
    return this.#folder.fd;
  }

  /** Whether an entry (a folder met in a walk, an opened top) is the state folder itself. */
  is(stats: Identity): boolean {
    return stats.dev === this.#identity.dev && stats.ino === this.#identity.ino;
  }

  /**
   * Its real path now, through its descriptor (/proc/self/fd) where there is one: a rename since
   * the host started is followed. Without /proc, the path it had.
   */
  where(): string {
    try {
      return realPathOf(this.#folder);
    } catch {
      return this.#folder.path;
    }
  }

  /** Whether the real path `real` is the state folder or lies beneath it. */
  holds(real: string): boolean {
    const home = this.where();
    return real === home || real.startsWith(`${home}/`);
  }

  /**
   * Refuses a share of the state folder, or of anything inside it: sharing ~/.teleport would
   * give away the host's key. `real` is the share's real path; each folder above it is compared
   * by identity, so another name for the state folder is refused too.
   */
  refuseShareOf(real: string): void {
    for (let folder = real; ; folder = dirname(folder)) {
      const stats = quietStat(folder);
      if (stats !== undefined && this.is(stats))
        throw new TeleportError(
          ErrorCode.USAGE,
          `${real} is inside TELEPORT_HOME ${this.#folder.path}, which holds this host's key; share another folder`,
        );
      if (folder === dirname(folder)) return;
    }
  }

  /**
   * Lets the folder go; later calls do nothing. Its descriptor is closed exactly once: closed
   * again, the number may by then be another thread's socket (a host destroyed and then closed).
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeSync(this.#folder.fd);
  }
}

/**
 * The real path of what a descriptor holds: its /proc/self/fd link, which the kernel keeps
 * current through renames (one readlink); without /proc, its path resolved.
 */
export function realPathOf(handle: FolderHandle): string {
  const at = beneath.pathAt(handle, "");
  return at === handle.path ? realpathSync(at) : readlinkSync(at);
}

function quietStat(path: string): Identity | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined; // unreadable: not what was opened
  }
}
