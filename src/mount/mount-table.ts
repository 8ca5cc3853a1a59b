/**
 * Teleport's FUSE mounts as the kernel lists them (/proc/self/mountinfo), read without touching
 * the mount itself (a stat of a hung mount would hang too), and the fusectl abort that ends a
 * mount's connection: every request waiting on it fails at once, whatever its daemon does.
 */
import { execFile } from "node:child_process";
import { readdir, readFile, realpath, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { promisify } from "node:util";

export const TELEPORT_FSTYPE = "fuse.teleport";
const FUSECTL = "/sys/fs/fuse/connections";

export interface FuseMount {
  mountpoint: string;
  /** As the kernel names it: fuse.teleport for ours. */
  fstype: string;
  /** The connection's number in fusectl: the minor of the mount's device. */
  connection: number;
}

/** The mount at `mountpoint` (the last one, if stacked), or undefined. */
export async function findMount(mountpoint: string): Promise<FuseMount | undefined> {
  // The folder holding it resolved, not the mountpoint: a stat of a hung mount would hang.
  const absolute = resolve(mountpoint);
  const parent = await realpath(dirname(absolute)).catch(() => dirname(absolute));
  const wanted = join(parent, basename(absolute));
  const info = await readFile("/proc/self/mountinfo", "utf8");
  let found: FuseMount | undefined;
  for (const line of info.split("\n")) {
    const mount = parseMountInfo(line);
    if (mount?.mountpoint === wanted) found = mount;
  }
  return found;
}

/** One line of mountinfo: `id parent major:minor root mountpoint options ... - fstype source ...`. */
export function parseMountInfo(line: string): FuseMount | undefined {
  const [left, right] = line.split(" - ");
  const fields = left?.split(" ");
  const device = fields?.[2]?.split(":");
  const mountpoint = fields?.[4];
  const fstype = right?.split(" ")[0];
  if (device?.length !== 2 || mountpoint === undefined || fstype === undefined) return undefined;
  return { mountpoint: unescapeOctal(mountpoint), fstype, connection: Number(device[1]) };
}

/** Aborts the mount's FUSE connection (root), mounting fusectl first where it is not. */
export async function abortConnection(mount: FuseMount): Promise<void> {
  const entries = await readdir(FUSECTL).catch(() => []);
  if (entries.length === 0) await promisify(execFile)("mount", ["-t", "fusectl", "none", FUSECTL]);
  await writeFile(`${FUSECTL}/${mount.connection}/abort`, "1");
}

/** mountinfo writes space, tab, newline and backslash as \ooo. */
function unescapeOctal(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, code: string) => String.fromCharCode(Number.parseInt(code, 8)));
}
