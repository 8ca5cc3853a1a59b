/**
 * Secrets at rest (the share link, the host's key and master secret, the chunk index): readable
 * by their owner only, and never written through a name another local user could have prepared.
 */
import { randomBytes } from "node:crypto";
import { closeSync, constants, fchmodSync, fstatSync, openSync } from "node:fs";
import { open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

export const PRIVATE_MODE = 0o600;

/**
 * Writes `contents` to `path` with mode 0600, atomically: into a temp file of a random name
 * beside it, created with O_EXCL (so a symlink or file planted there is never followed or
 * reused), synced, then renamed over `path` (which replaces a symlink there, never writes
 * through it).
 */
export async function writePrivateFile(path: string, contents: string | Buffer): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(8).toString("hex")}.tmp`);
  const file = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, PRIVATE_MODE);
  try {
    await file.writeFile(contents);
    await file.sync();
    await file.close();
    await rename(temp, path);
  } catch (err) {
    await file.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw err;
  }
}

/**
 * Makes sure `path` exists with mode 0600 before a library (SQLite) opens it by name: created
 * with O_EXCL when absent, and narrowed when an earlier version left it readable by others. A
 * symlink at `path` is refused (O_NOFOLLOW), not followed.
 */
export function ensurePrivateFile(path: string): void {
  let fd: number;
  try {
    fd = openSync(
      path,
      constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      PRIVATE_MODE,
    );
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  }
  try {
    narrowToOwner(fd);
  } finally {
    closeSync(fd);
  }
}

/** Same as ensurePrivateFile for a file that may not exist (SQLite's -wal and -shm beside the index). */
export function narrowIfPresent(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  try {
    narrowToOwner(fd);
  } finally {
    closeSync(fd);
  }
}

function narrowToOwner(fd: number): void {
  const stats = fstatSync(fd);
  if ((stats.mode & 0o077) !== 0 && stats.uid === process.geteuid?.()) fchmodSync(fd, stats.mode & 0o700);
}

/**
 * Whether only this user could have written the file `stats` describes: owned by our effective
 * user, with no group or other write bit. A part file or index source failing this may hold
 * bytes another local user put there, and is not trusted.
 */
export function writableOnlyByUs(stats: { uid: number | bigint; mode: number | bigint }): boolean {
  const euid = process.geteuid?.();
  return (euid === undefined || BigInt(stats.uid) === BigInt(euid)) && (BigInt(stats.mode) & 0o022n) === 0n;
}
