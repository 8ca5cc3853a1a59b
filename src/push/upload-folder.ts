/**
 * The folder an upload goes into (`push --path`), opened beneath the share root's descriptor a
 * name at a time and made where missing, never through a symlink: the descriptor it ends with is
 * what the upload's pull writes beneath (PullOptions.destFolder), so no path string is trusted
 * twice. A folder on the way swapped for a symlink, before or while the upload starts, is refused
 * (O_NOFOLLOW), never followed out of the share.
 */
import { closeSync, constants, fstatSync, openSync } from "node:fs";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { directoryIo, type OpenFolder } from "../platform/directory-io.js";
import type { Share } from "../serve/share.js";
import type { Identity } from "../store/state-folder.js";

/** Folders an upload makes: what mkdir's default gives, less the umask. */
const FOLDER_MODE = 0o777;

export interface UploadFolderOptions {
  /** Make folders missing on the way; else (a dry run, which writes nothing) undefined where one is. */
  make: boolean;
  /** Refuses a folder on the way, before anything is made in it: the host's state folder. */
  refuse: (stats: Identity) => boolean;
}

/**
 * `remote` ("/"-separated, normalized; "" the share root) opened beneath the share's root; the
 * caller closes it.
 */
export function openUploadFolder(
  share: Share,
  remote: string,
  options: UploadFolderOptions,
): OpenFolder | undefined {
  let folder = openShareRoot(share);
  try {
    for (const name of remote === "" ? [] : remote.split("/")) {
      const next = options.make ? openOrMake(folder, name, remote) : openIfThere(folder, name, remote);
      closeSync(folder.fd);
      if (next === undefined) return undefined;
      folder = next;
      if (options.refuse(fstatSync(folder.fd)))
        throw new TeleportError(ErrorCode.PATH_ESCAPE, `"${remote}" leads out of the share`);
    }
    return folder;
  } catch (err) {
    closeSync(folder.fd);
    throw err;
  }
}

/**
 * A descriptor of its own of the share's root, reached through the share's (O_PATH where it can
 * be): openat(".") with the addon, else the descriptor's /proc link (followed: it is the open
 * folder, not a name), and the root's path only where there is no /proc.
 */
function openShareRoot(share: Share): OpenFolder {
  const held = { fd: share.rootFd, path: share.root };
  if (directoryIo.kind === "native") return directoryIo.openFolder(held, ".");
  const path = directoryIo.kind === "proc" ? `/proc/self/fd/${share.rootFd}` : share.root;
  return { fd: openSync(path, constants.O_RDONLY | constants.O_DIRECTORY), path: share.root };
}

function openOrMake(folder: OpenFolder, name: string, remote: string): OpenFolder {
  try {
    directoryIo.makeFolder(folder, name, FOLDER_MODE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw toTeleportError(err, `making "${remote}"`);
  }
  return openFolder(folder, name, remote);
}

function openIfThere(folder: OpenFolder, name: string, remote: string): OpenFolder | undefined {
  if (directoryIo.stat(folder, name) === undefined) return undefined;
  return openFolder(folder, name, remote);
}

function openFolder(parent: OpenFolder, name: string, remote: string): OpenFolder {
  try {
    return directoryIo.openFolder(parent, name);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ELOOP" && code !== "ENOTDIR") throw toTeleportError(err, `opening "${remote}"`);
    throw new TeleportError(
      ErrorCode.PATH_ESCAPE,
      `"${remote}": ${name} is a symlink or not a folder; an upload never goes through one`,
    );
  }
}
