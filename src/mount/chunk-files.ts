/**
 * The files of a mount's chunk store, one per chunk: read whole, written under a temporary name
 * then renamed into place (a killed writer leaves a temp file, never a torn chunk under its
 * name), always without following a symlink, in a folder only this user can write to.
 */
import {
  close,
  closeSync,
  constants,
  fchmodSync,
  lstatSync,
  mkdirSync,
  open,
  openSync,
  read,
  readSync,
  rename,
  unlink,
  unlinkSync,
  write,
} from "node:fs";
import { ErrorCode, TeleportError } from "../errors.js";
import { PRIVATE_MODE } from "../store/private-file.js";

/** The `size` bytes of the chunk file at `path` (unverified), or undefined if it has fewer or none. */
export function readChunkFile(path: string, size: number): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  return readWholeAndClose(fd, 0, size);
}

/**
 * The `size` bytes at `position` of the open file `fd`, or undefined if it has fewer or a read
 * fails; `fd` is closed either way.
 */
export function readWholeAndClose(fd: number, position: number, size: number): Buffer | undefined {
  try {
    const bytes = Buffer.allocUnsafe(size);
    let filled = 0;
    while (filled < size) {
      const n = readSync(fd, bytes, filled, size - filled, position + filled);
      if (n === 0) return undefined;
      filled += n;
    }
    return bytes;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * readChunkFile through the thread pool, into `bytes` (`size` long): several run at once, the
 * disk's queue kept busy.
 * Callbacks, not fs/promises: no FileHandle and fewer promises per chunk for the collector.
 */
export function readChunkFileAsync(
  path: string,
  size: number,
  bytes: Buffer = Buffer.allocUnsafe(size),
): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    open(path, constants.O_RDONLY | constants.O_NOFOLLOW, (openError, fd) => {
      if (openError !== null) {
        resolve(undefined);
        return;
      }
      const finish = (result: Buffer | undefined) => close(fd, () => resolve(result));
      const readFrom = (filled: number): void => {
        if (filled === size) {
          finish(bytes);
          return;
        }
        read(fd, bytes, filled, size - filled, filled, (readError, bytesRead) => {
          if (readError !== null || bytesRead === 0) finish(undefined);
          else readFrom(filled + bytesRead);
        });
      };
      readFrom(0);
    });
  });
}

/**
 * Writes `bytes` to tempPath(path, pid) (O_EXCL, 0600) and renames it to `path`; false if that
 * failed. Through the thread pool: the main thread only posts the four steps.
 */
export function writeChunkFileAsync(path: string, pid: number, bytes: Buffer): Promise<boolean> {
  const temp = tempPath(path, pid);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  return new Promise((resolve) => {
    const fail = () => unlink(temp, () => resolve(false));
    open(temp, flags, PRIVATE_MODE, (openError, fd) => {
      if (openError !== null) {
        resolve(false);
        return;
      }
      const writeFrom = (at: number): void => {
        if (at === bytes.length) {
          close(fd, (closeError) => {
            if (closeError !== null) fail();
            else rename(temp, path, (renameError) => (renameError === null ? resolve(true) : fail()));
          });
          return;
        }
        write(fd, bytes, at, bytes.length - at, null, (writeError, written) => {
          if (writeError === null) writeFrom(at + written);
          else close(fd, fail);
        });
      };
      writeFrom(0);
    });
  });
}

/** Where the process `pid` writes the chunk file `path` before renaming it into place. */
export function tempPath(path: string, pid: number): string {
  return `${path}.${pid}.tmp`;
}

/**
 * Makes `folder` (and its parents) if needed and checks it is a real folder of this user, narrowed
 * to 0700: a folder another user could write to would let them plant chunks.
 */
export function privateFolder(folder: string): void {
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const stats = lstatSync(folder);
  const euid = process.geteuid?.();
  if (!stats.isDirectory() || (euid !== undefined && stats.uid !== euid))
    throw new TeleportError(
      ErrorCode.USAGE,
      `the mount cache ${folder} is not a folder of this user; give --cache-dir another one`,
    );
  if ((stats.mode & 0o077) !== 0) {
    const fd = openSync(folder, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      // Through a descriptor of the folder just checked: a rename in between narrows it, not another.
      fchmodSync(fd, 0o700);
    } finally {
      closeSync(fd);
    }
  }
}

export function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}

/** Whether the process `pid` still runs (a chunk it was writing may still come). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
