/**
 * Paths on the wire are relative to the share root, '/'-separated, with no empty, "." or ".."
 * component, no NUL and no leading slash; "" is the root. Both sides check every path they
 * receive: the host so that a client cannot read outside the share, the client so that a hostile
 * host cannot make it write outside the destination.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import { MAX_NAME_BYTES, MAX_PATH_BYTES } from "./messages.js";

/** Splits a wire path into its components, refusing anything that could escape the root. */
export function splitWirePath(path: string): string[] {
  if (path === "") return [];
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) {
    throw new TeleportError(ErrorCode.UNSAFE_NAME, `path is longer than ${MAX_PATH_BYTES} bytes`);
  }
  if (path.includes("\0")) throw new TeleportError(ErrorCode.UNSAFE_NAME, "path contains a NUL byte");
  if (path.startsWith("/")) {
    throw new TeleportError(ErrorCode.PATH_ESCAPE, `absolute path "${path}" is not allowed`);
  }
  const parts = path.split("/");
  for (const part of parts) {
    if (part === "..") throw new TeleportError(ErrorCode.PATH_ESCAPE, `path "${path}" leaves the share`);
    if (part === "" || part === ".") {
      throw new TeleportError(ErrorCode.UNSAFE_NAME, `path "${path}" has an empty or "." component`);
    }
    if (Buffer.byteLength(part) > MAX_NAME_BYTES) {
      throw new TeleportError(
        ErrorCode.UNSAFE_NAME,
        `a name in "${path}" is longer than ${MAX_NAME_BYTES} bytes`,
      );
    }
  }
  return parts;
}

/** Normalises a user-typed remote path ("/a//b/", "./a") into wire form, still refusing "..". */
export function normalizeUserPath(path: string): string {
  const parts = path.split("/").filter((part) => part !== "" && part !== ".");
  const wire = parts.join("/");
  splitWirePath(wire);
  return wire;
}

export function joinWirePath(parent: string, name: string): string {
  return parent === "" ? name : `${parent}/${name}`;
}

/** True if `path` equals `ancestor` or lies beneath it. */
export function isWithin(path: string, ancestor: string): boolean {
  return ancestor === "" || path === ancestor || path.startsWith(`${ancestor}/`);
}

/**
 * Checks a symlink target as seen from the link at `linkPath`: it must be relative and, resolved
 * lexically, stay inside the root. Returns the normalised target.
 */
export function checkLinkTarget(linkPath: string, target: string): string {
  if (target === "" || target.includes("\0") || target.startsWith("/")) {
    throw new TeleportError(ErrorCode.PATH_ESCAPE, `symlink "${linkPath}" has an unsafe target`);
  }
  if (Buffer.byteLength(target) > MAX_PATH_BYTES) {
    throw new TeleportError(ErrorCode.UNSAFE_NAME, `symlink "${linkPath}" target is too long`);
  }
  const resolved = splitWirePath(linkPath).slice(0, -1);
  for (const part of target.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (resolved.length === 0) {
        throw new TeleportError(ErrorCode.PATH_ESCAPE, `symlink "${linkPath}" points outside the share`);
      }
      resolved.pop();
    } else {
      resolved.push(part);
    }
  }
  return target;
}
