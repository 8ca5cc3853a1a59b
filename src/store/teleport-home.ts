/**
 * TELEPORT_HOME, the state folder: the host's identity and the chunk index live in it. The CLI
 * and the library find it the same way, so a library pull dedups and resumes against the index
 * the CLI's pulls filled, and the other way round.
 */
import { homedir } from "node:os";
import { join, resolve } from "node:path";

/** $TELEPORT_HOME, else ~/.teleport. */
export function teleportHome(): string {
  const fromEnv = process.env.TELEPORT_HOME;
  return fromEnv !== undefined && fromEnv !== "" ? resolve(fromEnv) : join(homedir(), ".teleport");
}
