/**
 * What a pull with `--exclude`/`--include` or `--delete` does with each entry the manifest
 * announces, by its path relative to DEST (the transfer root the filters read): one the filters
 * leave out fails the pull, as the host should not have sent it; the others are told to
 * `--delete`'s MirrorDeletions. The pulled item itself is never filtered (the host does not).
 */
import type { PathFilter } from "../filter/path-filter.js";
import { splitWirePath } from "../wire/path.js";
import { protocolError } from "./manifest-walker.js";
import type { MirrorDeletions } from "./mirror-deletions.js";

export function entryAdmission(
  remote: string,
  filter: PathFilter | undefined,
  mirror: MirrorDeletions | undefined,
): ((wirePath: string, isFolder: boolean) => void) | undefined {
  if (filter === undefined && mirror === undefined) return undefined;
  const slash = remote.lastIndexOf("/");
  // Components of the pulled item's parent: what a wire path loses under DEST.
  const skip = slash < 0 ? 0 : splitWirePath(remote.slice(0, slash)).length;
  return (wirePath, isFolder) => {
    const path = skip === 0 ? wirePath : splitWirePath(wirePath).slice(skip).join("/");
    if (wirePath !== remote && filter?.excludes(path, isFolder) === true)
      throw protocolError(`host sent "${wirePath}", which the pull's --exclude/--include leave out`);
    mirror?.announced(path, isFolder);
  };
}
