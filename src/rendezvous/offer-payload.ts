/**
 * What the sender seals for the receiver: the share link (exactly what `teleport host` would
 * print: address, pinned fingerprint, secret, relays), and the name of what is sent, so that
 * `receive CODE` with no DEST makes a folder of that name as `pull` of the link would not.
 * The receiver checks all of it: a name is one plain path component, or it is not used.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import { parseLink } from "../transport/link.js";

export interface OfferPayload {
  link: string;
  /** The shared folder's or file's name. */
  name: string;
  /** A share of one file (`send FILE`): it lands in DEST under its name. */
  oneFile: boolean;
}

/** Longest name kept: file systems' NAME_MAX. */
const MAX_NAME_BYTES = 255;

export function encodeOfferPayload(payload: OfferPayload): string {
  return JSON.stringify(payload);
}

export function decodeOfferPayload(text: string): OfferPayload {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new TeleportError(ErrorCode.PROTOCOL, "join code: the sender's offer is not JSON", { cause: err });
  }
  const { link, name, oneFile } = (parsed ?? {}) as Record<string, unknown>;
  if (typeof link !== "string" || typeof name !== "string" || typeof oneFile !== "boolean")
    throw new TeleportError(ErrorCode.PROTOCOL, "join code: the sender's offer lacks its link, name or kind");
  parseLink(link);
  if (!isPlainName(name))
    throw new TeleportError(ErrorCode.UNSAFE_NAME, "join code: the sender's offer names an unsafe path");
  return { link, name, oneFile };
}

/** One component: not empty, `.` or `..`, no separator, no control character, not too long. */
export function isPlainName(name: string): boolean {
  return (
    name !== "" &&
    name !== "." &&
    name !== ".." &&
    Buffer.byteLength(name) <= MAX_NAME_BYTES &&
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
    !/[/\\\u0000-\u001f\u007f]/.test(name)
  );
}
