/**
 * The folders `pull --watch` makes at the destination for a changed path, beside what its pulls
 * write. Every name is taken relative to a folder held open (platform/directory-io.ts), never
 * through a symlink: one in the way is replaced by the folder the host now has there, so
 * nothing outside the destination is written whatever path the host reports. (What the host
 * reports gone is removed by platform/remove-beneath.ts.)
 */
import { closeSync, constants } from "node:fs";
import { toTeleportError } from "../errors.js";
import { directoryIo, type OpenFolder, openTopFolder } from "../platform/directory-io.js";

/**
 * Makes `names` (folder names from the destination down) real folders: missing ones are made,
 * and a file or symlink in the way is removed, as the host has a folder there now.
 */
export function ensureFolders(dest: string, names: string[]): void {
  closeSync(openFolders(dest, names).fd);
}

/**
 * As ensureFolders, and returns the last of them held open (the caller closes it), for a pull to
 * write beneath without naming it by path again: another local user may swap a folder on the way
 * for a symlink at any moment.
 */
export function openFolders(dest: string, names: string[]): OpenFolder {
  let folder: OpenFolder | undefined;
  try {
    folder = openTopFolder(dest);
    for (const name of names) {
      const next: OpenFolder = openOrMakeFolder(folder, name);
      closeSync(folder.fd);
      folder = next;
    }
    return folder;
  } catch (err) {
    if (folder !== undefined) closeSync(folder.fd);
    throw toTeleportError(err, `making ${names.join("/")} in ${dest}`);
  }
}

function openOrMakeFolder(folder: OpenFolder, name: string): OpenFolder {
  const found = directoryIo.stat(folder, name);
  const isFolder = found !== undefined && (found.mode & constants.S_IFMT) === constants.S_IFDIR;
  if (found !== undefined && !isFolder) directoryIo.unlink(folder, name);
  if (!isFolder) directoryIo.makeFolder(folder, name, 0o755);
  return directoryIo.openFolder(folder, name);
}
