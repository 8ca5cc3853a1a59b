/**
 * Writing into the destination folder safely. Paths come from the host and were checked by
 * `splitWirePath`; here we also make sure we never write through a symlink: folders we write into
 * are verified to be real folders, files are created under fresh temporary names with O_EXCL and
 * renamed into place only when complete and verified.
 *
 * These calls are synchronous, like every per-file call of a pull: each takes a few microseconds
 * in the kernel, and handing it to libuv's thread pool costs far more on these VMs (a thread
 * wake-up each way). Creating 20,000 files of 10 KB (open, write, chmod, utimes, close, rename),
 * in back-to-back runs, cost 1.8 CPU-s with sync calls and 15.6-19.9 with fs/promises, 13-19 of
 * it system time.
 */
import { createHash, randomBytes } from "node:crypto";
import {
  constants,
  copyFileSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  renameSync,
  symlinkSync,
  unlinkSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";

const TEMP_SUFFIX = ".teleport-part";

/**
 * Creates `path` as a folder if missing (and says so); refuses if something else (a symlink, a
 * file) is there.
 */
export function ensureRealDirectory(path: string): "created" | "existed" {
  try {
    mkdirSync(path, { mode: 0o700 });
    return "created";
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw toTeleportError(err, `creating ${path}`);
  }
  const stats = lstatSync(path);
  if (!stats.isDirectory()) {
    throw new TeleportError(
      ErrorCode.UNSAFE_NAME,
      `${path} exists and is not a folder; not writing through it`,
    );
  }
  return "existed";
}

/**
 * A temporary name next to `finalPath`, carrying the writer's process id: a temporary file whose
 * writer is gone, and which no journal lists for resuming, is a killed pull's leftover that the
 * next pull into the folder removes (see `tempFileWriter`).
 */
export function tempPathFor(finalPath: string): string {
  const unique = `${process.pid}-${randomBytes(6).toString("hex")}`;
  return join(dirname(finalPath), `.${shortened(basename(finalPath))}.${unique}${TEMP_SUFFIX}`);
}

/** `.NAME.PID-RANDOM` + TEMP_SUFFIX, as tempPathFor makes them. */
const TEMP_NAME = /^\..+\.(\d+)-[0-9a-f]{12}\.teleport-part$/;

/** The process id of the pull that wrote the temporary file `name`; undefined if it is not one. */
export function tempFileWriter(name: string): number | undefined {
  const pid = TEMP_NAME.exec(name)?.[1];
  return pid === undefined ? undefined : Number(pid);
}

/** `name` if short, else a prefix and a hash of the whole: within NAME_MAX, and distinct. */
function shortened(name: string): string {
  if (Buffer.byteLength(name) <= 180) return name;
  const prefix = Buffer.from(name).subarray(0, 150).toString();
  return `${prefix}~${createHash("sha256").update(name).digest("hex").slice(0, 16)}`;
}

/**
 * Creates a new temporary file next to `finalPath`; O_EXCL|O_NOFOLLOW so no existing file or
 * link is reused.
 */
export function createTempFile(finalPath: string): { path: string; fd: number } {
  const path = tempPathFor(finalPath);
  const fd = createExclusive(path);
  if (fd === undefined) throw new TeleportError(ErrorCode.IO, `creating ${path}: it already exists`);
  return { path, fd };
}

/**
 * Opens a new file at `path` for reading and writing (local copies are read back to be verified,
 * see reuse.ts), or undefined if something is already there.
 */
function createExclusive(path: string): number | undefined {
  const flags = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);
  try {
    return openSync(path, flags, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return undefined;
    throw toTeleportError(err, `creating ${path}`);
  }
}

/** Atomically puts a finished file or symlink at its final path (replacing an older copy). */
export function commitPath(tempPath: string, finalPath: string): void {
  try {
    renameSync(tempPath, finalPath);
  } catch (err) {
    throw toTeleportError(err, `renaming into ${finalPath}`);
  }
}

/**
 * Makes `finalPath` another name of the regular file at `existingPath` (a copy where the file
 * system has no hard links), replacing what was there in one rename.
 */
export function linkReplacing(existingPath: string, finalPath: string): void {
  const stats = lstatSync(existingPath);
  if (!stats.isFile()) throw new TeleportError(ErrorCode.IO, `${existingPath} is not a file pulled here`);
  const current = lstatSync(finalPath, { throwIfNoEntry: false });
  // Already that file (a re-pull): rename would do nothing and leave the new name behind.
  if (current !== undefined && current.ino === stats.ino && current.dev === stats.dev) return;
  const temp = tempPathFor(finalPath);
  try {
    linkSync(existingPath, temp);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EPERM" && code !== "EMLINK" && code !== "EXDEV" && code !== "ENOTSUP") throw err;
    copyFileSync(existingPath, temp, constants.COPYFILE_FICLONE);
  }
  commitPath(temp, finalPath);
}

export function createSymlink(target: string, finalPath: string): void {
  const temp = tempPathFor(finalPath);
  try {
    symlinkSync(target, temp);
  } catch (err) {
    throw toTeleportError(err, `creating symlink ${finalPath}`);
  }
  commitPath(temp, finalPath);
}

export function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone, or never there
  }
}
