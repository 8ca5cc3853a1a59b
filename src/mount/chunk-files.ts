/**
 * Files for a mount's chunk store and local copies: a range read whole from an open file, the
 * store's folder made private to this user, and whether a process that wrote there still runs.
 */
import { closeSync, constants, fchmodSync, lstatSync, mkdirSync, openSync, read, readSync } from "node:fs";
import { ErrorCode, TeleportError } from "../errors.js";

/**
 * The `size` bytes at `position` of the open file `fd`, or undefined if it has fewer or a read
 * fails. The caller keeps (and closes) `fd`.
 */
export function readWhole(fd: number, position: number, size: number): Buffer | undefined {
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
  }
}

/**
 * Fills `into` from `position` of `fd` through the thread pool; `done(false)` at a short file or
 * an error. Callbacks, not fs/promises: no FileHandle per read for the collector.
 */
export function readIntoAsync(
  fd: number,
  into: Buffer,
  position: number,
  done: (whole: boolean) => void,
): void {
  const readFrom = (filled: number): void => {
    if (filled === into.length) done(true);
    else
      read(fd, into, filled, into.length - filled, position + filled, (error, n) => {
        if (error === null && n > 0) readFrom(filled + n);
        else done(false);
      });
  };
  readFrom(0);
}

/** `readWhole`, then `fd` closed either way. */
export function readWholeAndClose(fd: number, position: number, size: number): Buffer | undefined {
  try {
    return readWhole(fd, position, size);
  } finally {
    closeSync(fd);
  }
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

/** Whether the process `pid` still runs (a chunk it was writing may still come). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
