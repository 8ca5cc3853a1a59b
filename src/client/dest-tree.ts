/**
 * The few changes `pull --watch` makes to the destination itself, beside what its pulls write:
 * making the folders a changed path lies in, and removing what the host reports gone. Every name
 * is taken relative to a folder held open (platform/directory-io.ts), opened with O_NOFOLLOW: a
 * symlink in the destination is removed as a name, never followed, so nothing outside the
 * destination is touched whatever the host reports.
 */
import { closeSync, constants, openSync, rmdirSync } from "node:fs";
import { toTeleportError } from "../errors.js";
import { directoryIo, FOLDER_FLAGS, type OpenFolder } from "../platform/directory-io.js";
import { partFileWriter } from "../receive/part-names.js";

/** The destination's root, held open while `use` runs. */
function withRoot<T>(dest: string, use: (root: OpenFolder) => T): T {
  const root = { fd: openSync(dest, FOLDER_FLAGS), path: dest };
  try {
    return use(root);
  } finally {
    closeSync(root.fd);
  }
}

function isFolder(mode: number): boolean {
  return (mode & constants.S_IFMT) === constants.S_IFDIR;
}

/**
 * Makes `names` (folder names from the destination down) real folders: missing ones are made,
 * and a file or symlink in the way is removed, as the host has a folder there now.
 */
export function ensureFolders(dest: string, names: string[]): void {
  try {
    withRoot(dest, (root) => {
      let folder = root;
      for (const name of names) {
        const next = openOrMakeFolder(folder, name);
        if (folder !== root) closeSync(folder.fd);
        folder = next;
      }
      if (folder !== root) closeSync(folder.fd);
    });
  } catch (err) {
    throw toTeleportError(err, `making ${names.join("/")} in ${dest}`);
  }
}

function openOrMakeFolder(folder: OpenFolder, name: string): OpenFolder {
  const found = directoryIo.stat(folder, name);
  if (found !== undefined && !isFolder(found.mode)) directoryIo.unlink(folder, name);
  if (found === undefined || !isFolder(found.mode)) directoryIo.makeFolder(folder, name, 0o755);
  return directoryIo.openFolder(folder, name);
}

/**
 * Removes what `names` (from the destination down) is, a folder with all it holds; nothing if a
 * folder on the way is missing or is not a real folder (then the path is not there either).
 */
export function removeBeneath(dest: string, names: string[]): void {
  const last = names.at(-1);
  if (last === undefined) return; // the destination itself is never removed
  try {
    withRoot(dest, (root) => {
      const parent = openFoldersOnTheWay(root, names.slice(0, -1));
      if (parent === undefined) return;
      try {
        removeName(parent, last);
      } finally {
        if (parent !== root) closeSync(parent.fd);
      }
    });
  } catch (err) {
    throw toTeleportError(err, `removing ${names.join("/")} in ${dest}`);
  }
}

function openFoldersOnTheWay(root: OpenFolder, names: string[]): OpenFolder | undefined {
  let folder = root;
  for (const name of names) {
    const next = openFolderIfThere(folder, name);
    if (folder !== root) closeSync(folder.fd);
    if (next === undefined) return undefined;
    folder = next;
  }
  return folder;
}

/** The real folder `name`, or undefined for nothing or anything else (a symlink is never followed). */
function openFolderIfThere(folder: OpenFolder, name: string): OpenFolder | undefined {
  try {
    return directoryIo.openFolder(folder, name);
  } catch {
    return undefined;
  }
}

function removeName(folder: OpenFolder, name: string): void {
  const found = directoryIo.stat(folder, name);
  if (found === undefined) return;
  if (!isFolder(found.mode)) {
    directoryIo.unlink(folder, name);
    return;
  }
  const child = directoryIo.openFolder(folder, name);
  try {
    for (const entry of directoryIo.list(child)) removeName(child, entry);
  } finally {
    closeSync(child.fd);
  }
  rmdirSync(pathAt(folder, name));
}

/** rmdir has no *at form in Node: through the folder's /proc/self/fd link where there is one. */
function pathAt(folder: OpenFolder, name: string): string {
  return directoryIo.kind === "path" ? `${folder.path}/${name}` : `/proc/self/fd/${folder.fd}/${name}`;
}

/**
 * Removes every entry beneath the destination that `keep` (paths relative to the destination,
 * "/"-separated) does not hold, after a resync: the destination is the host's tree again.
 * Part files of pulls are left (the index may keep them for resuming). Returns what was removed.
 */
export function removeExtras(dest: string, keep: ReadonlySet<string>): string[] {
  const removed: string[] = [];
  const sweep = (folder: OpenFolder, prefix: string) => {
    for (const name of directoryIo.list(folder)) {
      if (partFileWriter(name) !== undefined) continue;
      const path = prefix === "" ? name : `${prefix}/${name}`;
      if (!keep.has(path)) {
        removeName(folder, name);
        removed.push(path);
        continue;
      }
      const found = directoryIo.stat(folder, name);
      if (found === undefined || !isFolder(found.mode)) continue;
      const child = directoryIo.openFolder(folder, name);
      try {
        sweep(child, path);
      } finally {
        closeSync(child.fd);
      }
    }
  };
  try {
    withRoot(dest, (root) => sweep(root, ""));
  } catch (err) {
    throw toTeleportError(err, `removing what the host no longer has from ${dest}`);
  }
  return removed;
}
