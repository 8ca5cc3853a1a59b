/**
 * The share link as a command takes it: on the command line, or `-` to read it from stdin, so
 * that it does not show in `ps` or the shell's history (`teleport pull - DEST < link.txt`).
 */
import { text } from "node:stream/consumers";
import { ErrorCode, TeleportError } from "../errors.js";

export const LINK_FROM_STDIN = "-";
/** A link is a few hundred bytes; more on stdin is not a link. */
const MAX_LINK_BYTES = 4096;

export async function readLinkArgument(
  link: string,
  stdin: NodeJS.ReadableStream = process.stdin,
): Promise<string> {
  if (link !== LINK_FROM_STDIN) return link;
  const input = await text(stdin);
  const first = input.split("\n").find((line) => line.trim() !== "");
  if (first === undefined || input.length > MAX_LINK_BYTES)
    throw new TeleportError(ErrorCode.BAD_LINK, "expected one share link on stdin");
  return first.trim();
}
