/**
 * What a pulled file gets besides its bytes, as the host sent it but within what this machine
 * allows: its mode (with the umask, never group or other write) and its extended attributes.
 */
import { toTeleportError } from "../errors.js";
import { platformIo } from "../platform/io.js";
import type { Xattr } from "../wire/messages.js";

/**
 * This process's umask, read once (reading it means setting it): modes from the host get it,
 * and never group or other write, so a host cannot open a folder of ours to other local users.
 */
const UMASK = process.umask();

export function modeFromHost(mode: number): number {
  return mode & 0o777 & ~UMASK & ~0o022;
}

/** Sets `xattrs` on the open file `fd` (named `path` in errors); false where this machine cannot. */
export function setXattrs(fd: number, xattrs: readonly Xattr[], path: string): boolean {
  try {
    return platformIo.writeXattrs(fd, xattrs) && xattrs.length > 0;
  } catch (err) {
    throw toTeleportError(err, `setting extended attributes of ${path}`);
  }
}

/** Whether `current` (read from a file; undefined: unreadable) holds exactly `wanted`. */
export function sameAttributes(current: readonly Xattr[] | undefined, wanted: readonly Xattr[]): boolean {
  if (current === undefined || current.length !== wanted.length) return false;
  const byName = new Map(current.map((xattr) => [xattr.name, xattr.value]));
  return wanted.every((xattr) => byName.get(xattr.name)?.equals(xattr.value) === true);
}
