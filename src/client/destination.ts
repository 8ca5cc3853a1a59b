/**
 * Writing into the destination folder safely. Paths come from the host and were checked by
 * `splitWirePath`; here we also make sure we never write through a symlink: folders we write into
 * are verified to be real folders, files are created under fresh temporary names with O_EXCL and
 * renamed into place only when complete and verified.
 */
import { createHash, randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, lstat, mkdir, open, rename, symlink, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";

const TEMP_SUFFIX = ".teleport-part";

/**
 * Creates `path` as a folder if missing (and says so); refuses if something else (a symlink, a
 * file) is there.
 */
export async function ensureRealDirectory(path: string): Promise<"created" | "existed"> {
  try {
    await mkdir(path, { mode: 0o700 });
    return "created";
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
  return "existed";
}

/**
 * A temporary name next to `finalPath`: random, or with `stable` always the same one, so that a
 * file a killed pull left under it (one with no journal to resume from) is found and replaced by
 * the next pull of the same file instead of left behind for good.
 */
export function tempPathFor(finalPath: string, stable = false): string {
  const unique = stable ? "" : `.${randomBytes(6).toString("hex")}`;
  return join(dirname(finalPath), `.${shortened(basename(finalPath))}${unique}${TEMP_SUFFIX}`);
}

/** `name` if short, else a prefix and a hash of the whole: within NAME_MAX, and distinct. */
function shortened(name: string): string {
  if (Buffer.byteLength(name) <= 180) return name;
  const prefix = Buffer.from(name).subarray(0, 150).toString();
  return `${prefix}~${createHash("sha256").update(name).digest("hex").slice(0, 16)}`;
}

/**
 * Creates a new temporary file next to `finalPath`; O_EXCL|O_NOFOLLOW so no existing file or
 * link is reused. With `stable`, under the stable temporary name, removing what is there first.
 */
export async function createTempFile(
  finalPath: string,
  stable = false,
): Promise<{ path: string; handle: FileHandle }> {
  const path = tempPathFor(finalPath, stable);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);
  try {
    return { path, handle: await open(path, flags, 0o600) };
  } catch (err) {
    if (!stable || (err as NodeJS.ErrnoException).code !== "EEXIST")
      throw toTeleportError(err, `creating ${path}`);
  }
  // A killed pull's leftover under the stable name: replaced, still never opened or followed.
  await removeQuietly(path);
  try {
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
