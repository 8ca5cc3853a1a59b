/**
 * Part-file names: a file being written is named `.NAME.PID-RANDOM-COUNT.teleport-part` beside
 * its final name, so that a killed pull's leftovers are recognised (their writer is gone) and
 * removed by the next pull into the folder, unless a journal keeps them for resuming.
 */
import { createHash, randomBytes } from "node:crypto";

const PART_SUFFIX = ".teleport-part";

/**
 * A part-file name for `name`, carrying the writer's process id: a part file whose writer is
 * gone, and which no journal lists for resuming, is a killed pull's leftover that the next pull
 * into the folder removes (see `partFileWriter`). Links and symlinks are made under such a name
 * too, then renamed.
 */
export function partNameFor(name: string): string {
  partNamesMade++;
  return `.${shortened(name)}.${PROCESS_PART}-${partNamesMade.toString(36)}${PART_SUFFIX}`;
}

/**
 * The random part is drawn once per process, and a counter makes each name distinct: a random
 * draw per file cost more main-thread time than creating the file (docs/decisions.md,
 * "Part-file names"). The name needs to be distinct, not secret: part files are created with
 * O_EXCL|O_NOFOLLOW, so a name someone prepared is never written through.
 */
const PROCESS_PART = `${process.pid}-${randomBytes(6).toString("hex")}`;
let partNamesMade = 0;

/**
 * `.NAME.PID-RANDOM-COUNT` + PART_SUFFIX, as partNameFor makes them, or `.NAME.PID-RANDOM` +
 * PART_SUFFIX, as earlier versions did (their leftovers are recognised too).
 */
const PART_NAME = /^\..+\.(\d+)-[0-9a-f]{12}(?:-[0-9a-z]+)?\.teleport-part$/;

/** The process id of the pull that wrote the part file `name`; undefined if it is not one. */
export function partFileWriter(name: string): number | undefined {
  const pid = PART_NAME.exec(name)?.[1];
  return pid === undefined ? undefined : Number(pid);
}

/** `name` if short, else a prefix and a hash of the whole: within NAME_MAX, and distinct. */
function shortened(name: string): string {
  if (Buffer.byteLength(name) <= 180) return name;
  const prefix = Buffer.from(name).subarray(0, 150).toString();
  return `${prefix}~${createHash("sha256").update(name).digest("hex").slice(0, 16)}`;
}

/** Whether `name` is a part file's. */
export function isPartName(name: string): boolean {
  return PART_NAME.test(name);
}

/** Whether process `pid` is running (as far as this user can tell). */
export function isRunning(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
