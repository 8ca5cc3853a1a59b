/**
 * A symlink's target checked against the destination as it is on disk, not only as text: the
 * text check (wire/path.ts) passes `a/s -> ..` then `a/t -> s/..`, which resolves above the
 * destination, since `s/..` is the parent of where `s` points, not `a`. Walking the target a
 * component at a time, a `..` may only follow a real folder, and a component a later one goes
 * through must be a real folder, a symlink this pull made (itself checked), or not there yet
 * (made later by the pull, and checked then).
 */
import { constants } from "node:fs";
import { ErrorCode, TeleportError } from "../errors.js";

/** What a name of the destination is, as far as a target's walk cares. */
export type NameKind = "folder" | "own-symlink" | "missing" | "other";

export function nameKind(mode: number | undefined, ownSymlink: boolean): NameKind {
  if (mode === undefined) return "missing";
  const type = mode & constants.S_IFMT;
  if (type === constants.S_IFDIR) return "folder";
  if (type === constants.S_IFLNK && ownSymlink) return "own-symlink";
  return "other";
}

/**
 * Throws PATH_ESCAPE unless `target`, a symlink's target in the folder `at` (its components
 * under the destination, every one a real folder), stays inside the destination. `kindOf`
 * says what the components under the destination name on disk.
 */
export function checkSymlinkTarget(
  linkName: string,
  at: readonly string[],
  target: string,
  kindOf: (components: readonly string[]) => NameKind,
): void {
  const outside = () =>
    new TeleportError(ErrorCode.PATH_ESCAPE, `symlink "${linkName}" points outside the destination`);
  if (target.startsWith("/")) throw outside();
  const resolved = [...at];
  /** How many leading components of `resolved` are known real folders. */
  let real = at.length;
  /** Past a component that is not a real folder: names may follow it, a `..` may not. */
  let opaque = false;
  for (const part of target.split("/")) {
    if (part === "" || part === ".") continue;
    if (!opaque && resolved.length > real) {
      const kind = kindOf(resolved);
      if (kind === "folder") real = resolved.length;
      else if (kind === "other") throw outside();
      else opaque = true;
    }
    if (part === "..") {
      if (opaque || resolved.length === 0) throw outside();
      resolved.pop();
      real = Math.min(real, resolved.length);
    } else {
      resolved.push(part);
    }
  }
}
