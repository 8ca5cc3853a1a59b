import { homedir } from "node:os";
import { join, resolve } from "node:path";

/** The state folder: $TELEPORT_HOME, else ~/.teleport. Holds the host identity (and later the index). */
export function teleportHome(): string {
  const fromEnv = process.env.TELEPORT_HOME;
  return fromEnv !== undefined && fromEnv !== "" ? resolve(fromEnv) : join(homedir(), ".teleport");
}
