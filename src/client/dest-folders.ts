/**
 * The folders `pull --watch` makes at the destination for a changed path, beside what its pulls
 * write. Every name is taken relative to a folder held open (platform/directory-io.ts), never
 * through a symlink: one in the way is replaced by the folder the host now has there, so
 * nothing outside the destination is written whatever path the host reports. (What the host
 * reports gone is removed by platform/remove-beneath.ts.)
 */
import { closeSync, constants } from "node:fs";
import { toTeleportError } from "../errors.js";
import { directoryIo, type OpenFolder, withTopFolder } from "../platform/directory-io.js";

/**
 * Makes `names` (folder names from the destination down) real folders: missing ones are made,
 * and a file or symlink in the way is removed, as the host has a folder there now.
 */
export function ensureFolders(dest: string, names: string[]): void {
  try {
    withTopFolder(dest, (root) => {
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
  const isFolder = found !== undefined && (found.mode & constants.S_IFMT) === constants.S_IFDIR;
  if (found !== undefined && !isFolder) directoryIo.unlink(folder, name);
  if (!isFolder) directoryIo.makeFolder(folder, name, 0o755);
  return directoryIo.openFolder(folder, name);
}
