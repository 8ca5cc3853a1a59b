/**
 * `pull --delete`: what DEST holds inside the pulled subtree that the source does not. Found
 * folder by folder as the manifest walks: each folder's names are kept while the walk is inside
 * it, and when the walk leaves it its DEST listing is compared with them, through its DEST folder
 * opened once beneath its parent's. Memory: the names (and a descriptor) of the folders the walk
 * is inside (one path from the top, not the tree), and the entries to remove
 * (an extra folder is one, whatever it holds). Nothing is removed here: the pull removes them
 * (platform/remove-beneath.ts) once it has succeeded, never after a failed or partial one.
 */
import { closeSync, constants } from "node:fs";
import { directoryIo, type OpenFolder, openTopFolder } from "../platform/directory-io.js";
import { type RemovalReport, removeBeneath } from "../platform/remove-beneath.js";
import { partFileWriter } from "./part-names.js";

/** A folder of the pulled subtree the walk is inside, and the names the source has in it. */
interface WalkedFolder {
  /** "/"-separated, relative to DEST ("" DEST itself). */
  readonly path: string;
  readonly names: Set<string>;
  /** Its DEST folder, once opened (by it or a folder inside it), until the walk leaves it. */
  open?: OpenFolder | undefined;
}

export interface MirrorDeletionsOptions {
  /** DEST, absolute: opened once, when first compared; every name beneath is relative to it. */
  dest: string;
  /** DEST already open, held by the caller (who closes it): used instead of opening `dest`. */
  destFolder?: OpenFolder | undefined;
  /** What stays though the source lacks it: `--exclude`d names (rsync's --delete keeps them). */
  protect: (path: string, isFolder: boolean) => boolean;
}

export class MirrorDeletions {
  readonly #options: MirrorDeletionsOptions;
  readonly #inside: WalkedFolder[] = [];
  #root: OpenFolder | undefined;
  /** Entries of DEST to remove ("/"-separated, relative to DEST), in walk order. */
  readonly extras: string[] = [];

  constructor(options: MirrorDeletionsOptions) {
    this.#options = options;
  }

  /**
   * An entry the manifest announced (or skipped: it exists at the source), by its path relative
   * to DEST, in manifest order: depth-first, a folder before what it holds.
   */
  announced(path: string, isFolder: boolean): void {
    if (path === "") {
      this.#inside.push({ path, names: new Set() }); // the share root, landing on DEST itself
      return;
    }
    const slash = path.lastIndexOf("/");
    const parent = slash < 0 ? "" : path.slice(0, slash);
    let top = this.#inside.at(-1);
    while (top !== undefined && top.path !== parent) {
      this.#leave();
      top = this.#inside.at(-1);
    }
    top?.names.add(path.slice(slash + 1));
    if (isFolder) this.#inside.push({ path, names: new Set() });
  }

  /** The manifest has ended: every folder still open is compared. */
  finish(): void {
    while (this.#inside.length > 0) this.#leave();
  }

  /**
   * After a pull that succeeded: removes the extras, beneath DEST, keeping what `protect` keeps
   * (with `dryRun`, only says what it would remove).
   */
  remove(dryRun = false): RemovalReport {
    this.finish();
    if (this.extras.length === 0) return { removed: [], removedCount: 0, failures: [], failureCount: 0 };
    return removeBeneath(this.#openRoot(), this.extras, { protect: this.#options.protect, dryRun });
  }

  /** Closes DEST; idempotent. */
  close(): void {
    if (this.#root !== undefined && this.#root !== this.#options.destFolder) closeSync(this.#root.fd);
    this.#root = undefined;
  }

  #openRoot(): OpenFolder {
    this.#root ??= this.#options.destFolder ?? openTopFolder(this.#options.dest);
    return this.#root;
  }

  #leave(): void {
    const folder = this.#inside.pop();
    if (folder === undefined) return;
    const opened = this.#opened(folder, this.#inside.length);
    try {
      if (opened !== undefined) this.#noteExtras(folder, opened);
    } finally {
      if (folder.open !== undefined && folder.open !== this.#root) closeSync(folder.open.fd);
      folder.open = undefined;
    }
  }

  /** Compares the folder's DEST listing with the source's names. */
  #noteExtras(folder: WalkedFolder, opened: OpenFolder): void {
    for (const name of directoryIo.list(opened)) {
      if (folder.names.has(name) || partFileWriter(name) !== undefined) continue;
      const stat = directoryIo.stat(opened, name);
      if (stat === undefined) continue;
      const path = folder.path === "" ? name : `${folder.path}/${name}`;
      const isFolder = (stat.mode & constants.S_IFMT) === constants.S_IFDIR;
      if (!this.#options.protect(path, isFolder)) this.extras.push(path);
    }
  }

  /**
   * The DEST folder of `folder` (at `depth` in the walk), opened once, beneath its parent's
   * (itself opened the same way, up to DEST), never through a symlink; undefined if it is not
   * there to compare (it failed to be made, or is no longer a folder).
   */
  #opened(folder: WalkedFolder, depth: number): OpenFolder | undefined {
    if (folder.open !== undefined) return folder.open;
    try {
      if (folder.path === "") folder.open = this.#openRoot();
      else {
        const parent = this.#inside[depth - 1];
        const parentFolder = parent === undefined ? this.#openRoot() : this.#opened(parent, depth - 1);
        if (parentFolder === undefined) return undefined;
        const name = folder.path.slice(folder.path.lastIndexOf("/") + 1);
        const under = parent === undefined ? folder.path : name; // the top of a --path pull
        folder.open = openBeneath(parentFolder, under);
      }
    } catch {
      return undefined;
    }
    return folder.open;
  }
}

/** Opens `path`'s folders one beneath the other, never through a symlink; closes the ones on the way. */
function openBeneath(folder: OpenFolder, path: string): OpenFolder {
  let at = folder;
  for (const name of path.split("/")) {
    const next = directoryIo.openFolder(at, name);
    if (at !== folder) closeSync(at.fd);
    at = next;
  }
  return at;
}
