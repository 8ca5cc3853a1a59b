/**
 * A command's stdout: writes that wait for the reader, and a reader that went away. When the
 * reader closes the pipe (`teleport ls LINK | head -2`), the write fails with EPIPE; the command
 * then stops where it is, quietly, and the process exits 0. Exit 0, not the 141 a shell shows for
 * `cat` (killed by SIGPIPE before it could choose): the reader took what it wanted, and a
 * non-zero status would fail a `set -o pipefail` script over a pipe that worked (ripgrep
 * chooses the same).
 */
import { once } from "node:events";
import { toTeleportError } from "../errors.js";

/** Thrown out of a command when its stdout's reader has gone: the command ends, quietly, exit 0. */
export class StdoutClosed extends Error {
  constructor() {
    super("stdout was closed by its reader");
    this.name = "StdoutClosed";
  }
}

/** What ended stdout, once something has: its reader gone (EPIPE), or another error (a full disk). */
let failure: Error | undefined;
let watching = false;

/** Keeps stdout's 'error' event for the next write, instead of ending the process with a stack trace. */
function watchStdout(): void {
  if (watching) return;
  watching = true;
  process.stdout.on("error", (err: Error) => {
    failure ??= err;
  });
}

/** Writes to stdout, waiting while its reader is behind; throws StdoutClosed once it has gone. */
export async function writeOut(data: string | Buffer): Promise<void> {
  watchStdout();
  if (failure !== undefined) throw stdoutError(failure);
  if (process.stdout.write(data)) return;
  try {
    await once(process.stdout, "drain");
  } catch (err) {
    throw stdoutError(err);
  }
}

function stdoutError(err: unknown): Error {
  if ((err as NodeJS.ErrnoException).code === "EPIPE") return new StdoutClosed();
  return toTeleportError(err, "writing to stdout");
}
