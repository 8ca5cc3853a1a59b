/**
 * What a share serves, in one place: every name, or for a share of one file (`host FILE`) that
 * name only; and never the host's own state folder (TELEPORT_HOME, store/state-folder.ts) nor
 * anything in it, wherever it lies in the share and by whatever name. What is not served is
 * NOT_FOUND, as a name that does not exist: a client cannot tell it is there.
 */
import { join } from "node:path";
import { closeQuietly } from "../engine/file-io.js";
import { ErrorCode, TeleportError } from "../errors.js";
import { beneath, type FolderHandle } from "../platform/open-beneath.js";
import { type Identity, realPathOf, type StateFolder } from "../store/state-folder.js";
import { isWithin } from "../wire/path.js";

export class ServedPaths {
  readonly #root: string;
  readonly #only: string | undefined;
  readonly #stateFolder: StateFolder | undefined;
  /**
   * The state folder's wire path where it lies inside the share, as it was when a request last
   * named a path (refreshed by `refuseOpened`): what the opens that follow no symlink (chunk,
   * range and delta reads, one per file) are checked against, without a system call each.
   */
  #stateFolderPath: string | undefined;

  constructor(root: string, only: string | undefined, stateFolder: StateFolder | undefined) {
    this.#root = root;
    this.#only = only;
    this.#stateFolder = stateFolder;
    this.#stateFolderPath = this.#locateStateFolder();
  }

  /** Whether a wire path, reached through real folders only (no symlink), is served. */
  serves(wirePath: string): boolean {
    if (this.#stateFolderPath !== undefined && isWithin(wirePath, this.#stateFolderPath)) return false;
    if (this.#only === undefined || wirePath === "") return true;
    const slash = wirePath.indexOf("/");
    return (slash < 0 ? wirePath : wirePath.slice(0, slash)) === this.#only;
  }

  /** Throws NOT_FOUND, as for a missing name, for a wire path not served. */
  refuse(wirePath: string): void {
    if (!this.serves(wirePath)) throw notFound(wirePath);
  }

  /** Whether a folder met in a walk is the state folder, by identity (another name for it too). */
  isStateFolder(stats: Identity): boolean {
    return this.#stateFolder?.is(stats) === true;
  }

  /**
   * Throws NOT_FOUND where `opened`, the top of a request opened following symlinks inside the
   * share, is the state folder or lies within it: by identity, and by the kernel's path of what
   * was opened, so a symlink or a renamed folder leading there is refused too.
   */
  refuseOpened(wirePath: string, opened: FolderHandle, stats: Identity): void {
    if (this.#stateFolder === undefined) return;
    if (this.#stateFolder.is(stats)) throw notFound(wirePath);
    this.#refuseWithin(wirePath, opened);
  }

  /**
   * `fd`, opened at `wirePath` following no symlink by request; but without openat2 the ways that
   * open beneath follow symlinks inside the share on the way (platform/open-beneath.ts), so there
   * what was reached is checked as a request's top is. Refused: closed, and NOT_FOUND thrown.
   */
  checkReached(wirePath: string, fd: number): number {
    if (this.#stateFolder === undefined || beneath.way === "openat2") return fd;
    try {
      this.#refuseWithin(wirePath, { fd, path: join(this.#root, wirePath) });
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
    return fd;
  }

  /** Throws NOT_FOUND where what `opened` holds lies in the state folder, as it is now. */
  #refuseWithin(wirePath: string, opened: FolderHandle): void {
    const home = this.#stateFolder?.where();
    if (home === undefined) return;
    this.#stateFolderPath = this.#wirePathOf(home);
    const real = realPathOf(opened);
    if (real === home || real.startsWith(`${home}/`)) throw notFound(wirePath);
  }

  /** The state folder's wire path now, where it lies inside the share (a watcher ignores it). */
  stateFolderPath(): string | undefined {
    this.#stateFolderPath = this.#locateStateFolder();
    return this.#stateFolderPath;
  }

  /** The state folder's wire path now, where it lies inside the share. */
  #locateStateFolder(): string | undefined {
    return this.#wirePathOf(this.#stateFolder?.where());
  }

  /** The wire path of a real path inside the share; undefined for one outside. */
  #wirePathOf(real: string | undefined): string | undefined {
    const prefix = this.#root.endsWith("/") ? this.#root : `${this.#root}/`; // a share of "/"
    if (real === undefined || !real.startsWith(prefix)) return undefined;
    return real.slice(prefix.length);
  }
}

function notFound(wirePath: string): TeleportError {
  return new TeleportError(ErrorCode.NOT_FOUND, `"${wirePath}": no such file or directory`);
}
