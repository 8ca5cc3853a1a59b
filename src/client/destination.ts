/**
 * Writing into the destination folder safely. Paths come from the host and were checked by
 * `splitWirePath`; here we also make sure we never write through a symlink: folders we write into
 * are verified to be real folders, files are created under fresh temporary names with O_EXCL and
 * renamed into place only when complete and verified.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, lstat, mkdir, open, rename, symlink, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";

const TEMP_SUFFIX = ".teleport-part";

/** Creates `path` as a folder if missing; refuses if something else (a symlink, a file) is there. */
export async function ensureRealDirectory(path: string): Promise<void> {
  try {
    await mkdir(path, { mode: 0o700 });
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw toTeleportError(err, `creating ${path}`);
  }
  const stats = await lstat(path);
  if (!stats.isDirectory()) {
    throw new TeleportError(
      ErrorCode.UNSAFE_NAME,
      `${path} exists and is not a folder; not writing through it`,
    );
  }
}

export function tempPathFor(finalPath: string): string {
  return join(
    dirname(finalPath),
    `.${basename(finalPath).slice(0, 180)}.${randomBytes(6).toString("hex")}${TEMP_SUFFIX}`,
  );
}

/** Creates a new temporary file next to `finalPath`; O_EXCL|O_NOFOLLOW so no existing file or link is reused. */
export async function createTempFile(finalPath: string): Promise<{ path: string; handle: FileHandle }> {
  const path = tempPathFor(finalPath);
  try {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);
    return { path, handle: await open(path, flags, 0o600) };
  } catch (err) {
    throw toTeleportError(err, `creating ${path}`);
  }
}

/** Atomically puts a finished file or symlink at its final path (replacing an older copy). */
export async function commitPath(tempPath: string, finalPath: string): Promise<void> {
  try {
    await rename(tempPath, finalPath);
  } catch (err) {
    throw toTeleportError(err, `renaming into ${finalPath}`);
  }
}

export async function createSymlink(target: string, finalPath: string): Promise<void> {
  const temp = tempPathFor(finalPath);
  try {
    await symlink(target, temp);
  } catch (err) {
    throw toTeleportError(err, `creating symlink ${finalPath}`);
  }
  await commitPath(temp, finalPath);
}

export async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => {});
}
