/**
 * A command's stdout: writes that wait for the reader, and a reader that went away. When the
 * reader closes the pipe (`teleport ls LINK | head -2`), the write fails with EPIPE; the command
 * then stops where it is, quietly, and the process exits 0. Exit 0, not the 141 a shell shows for
 * `cat` (killed by SIGPIPE before it could choose): the reader took what it wanted, and a
 * non-zero status would fail a `set -o pipefail` script over a pipe that worked (ripgrep
 * chooses the same).
 */
import { once } from "node:events";

/** Thrown out of a command when its stdout's reader has gone: the command ends, quietly, exit 0. */
export class StdoutClosed extends Error {
  constructor() {
    super("stdout was closed by its reader");
    this.name = "StdoutClosed";
  }
}

let closed = false;
let watching = false;

/** Notes a closed pipe instead of letting its 'error' event end the process with a stack trace. */
function watchStdout(): void {
  if (watching) return;
  watching = true;
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") closed = true;
  });
}

/** Writes to stdout, waiting while its reader is behind; throws StdoutClosed once it has gone. */
export async function writeOut(data: string | Buffer): Promise<void> {
  watchStdout();
  if (closed) throw new StdoutClosed();
  if (process.stdout.write(data)) return;
  try {
    await once(process.stdout, "drain");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EPIPE") throw new StdoutClosed();
    throw err;
  }
}
