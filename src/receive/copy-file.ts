/**
 * A committed file copied to a new name, where the file system has no hard links (see
 * Destination.link): the copy a hard link would have been.
 */
import { closeSync, constants, fchmodSync, fstatSync, futimesSync } from "node:fs";
import { ErrorCode, TeleportError } from "../errors.js";
import { directoryIo, type OpenFolder } from "../platform/directory-io.js";
import { platformIo } from "../platform/io.js";
import type { Identity } from "../store/state-folder.js";

const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;

/** A name of the destination: the folder holding it, open, and the name in it. */
interface Place {
  readonly folder: OpenFolder;
  readonly name: string;
}

/**
 * Copies the committed file `source` (checked to be that file once open) to the new file
 * `target`, for a file system without hard links.
 */
export function copyCommittedFile(source: Place, identity: Identity, target: Place): void {
  const flags = constants.O_RDONLY | O_NOFOLLOW | constants.O_NONBLOCK;
  const input = directoryIo.openFile(source.folder, source.name, flags, 0);
  try {
    const stats = fstatSync(input);
    if (stats.dev !== identity.dev || stats.ino !== identity.ino)
      throw new TeleportError(ErrorCode.PATH_ESCAPE, `${source.name} changed before it was copied`);
    const createFlags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW;
    const output = directoryIo.openFile(target.folder, target.name, createFlags, 0o600);
    try {
      for (let done = 0; done < stats.size; ) {
        const copied = platformIo.copyRange(input, done, output, done, stats.size - done);
        if (copied === 0) break;
        done += copied;
      }
      fchmodSync(output, stats.mode & 0o777);
      futimesSync(output, stats.atime, stats.mtime);
    } finally {
      closeSync(output);
    }
  } finally {
    closeSync(input);
  }
}
