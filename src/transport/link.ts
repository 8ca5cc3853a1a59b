/**
 * Share links: `teleport://HOST:PORT/?fp=FINGERPRINT&key=SECRET`, with the certificate's SHA-256
 * fingerprint and the access secret in base64url; a write link (`host --allow-upload`) ends in
 * `&write=1`, so that `push` refuses a read link before dialing (the host decides by the secret).
 * A host reachable through relays (`host --relay`) adds `&relay=HOST:PORT` for each (at most
 * MAX_LINK_RELAYS). The link is all a client needs: where to connect, which host to trust, and
 * how to prove it was invited.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import { formatRelayAddress, parseRelayAddress, type RelayAddress } from "../relay/relay-protocol.js";

export interface ShareLink {
  host: string;
  port: number;
  fingerprint: Buffer;
  secret: Buffer;
  /** A write link: its secret is the host's upload secret (push). */
  write?: boolean | undefined;
  /** Relays the host is registered with (transport/relay.ts), tried when the host is not reachable directly. */
  relays?: RelayAddress[] | undefined;
}

/** The most relays a link names: each is a dial a client may make. */
export const MAX_LINK_RELAYS = 8;

const SCHEME = "teleport:";
const FINGERPRINT_BYTES = 32;
const MIN_SECRET_BYTES = 16;

export function formatLink(link: ShareLink): string {
  const host = link.host.includes(":") ? `[${link.host}]` : link.host;
  const relays = (link.relays ?? []).map(
    (relay) => `&relay=${encodeURIComponent(formatRelayAddress(relay))}`,
  );
  return `teleport://${host}:${link.port}/?fp=${link.fingerprint.toString("base64url")}&key=${link.secret.toString("base64url")}${link.write === true ? "&write=1" : ""}${relays.join("")}`;
}

/** The link's relays, or none; a BAD_LINK error for too many or one that is not HOST:PORT. */
function parseRelays(url: URL): RelayAddress[] {
  const texts = url.searchParams.getAll("relay");
  if (texts.length > MAX_LINK_RELAYS)
    throw new TeleportError(ErrorCode.BAD_LINK, `link names more than ${MAX_LINK_RELAYS} relays`);
  return texts.map((text) => {
    try {
      return parseRelayAddress(text);
    } catch {
      throw new TeleportError(ErrorCode.BAD_LINK, `link's relay "${text}" is not HOST:PORT`);
    }
  });
}

export function parseLink(text: string): ShareLink {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new TeleportError(
      ErrorCode.BAD_LINK,
      "not a teleport link (expected teleport://HOST:PORT/?fp=...&key=...)",
    );
  }
  if (url.protocol !== SCHEME)
    throw new TeleportError(ErrorCode.BAD_LINK, `link scheme must be teleport://, not ${url.protocol}//`);
  const port = Number(url.port);
  if (url.hostname === "" || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new TeleportError(ErrorCode.BAD_LINK, "link has no valid host and port");
  }
  const fingerprint = decodeParam(url, "fp");
  const secret = decodeParam(url, "key");
  if (fingerprint.length !== FINGERPRINT_BYTES) {
    throw new TeleportError(ErrorCode.BAD_LINK, "link fingerprint is not a SHA-256 digest");
  }
  if (secret.length < MIN_SECRET_BYTES)
    throw new TeleportError(ErrorCode.BAD_LINK, "link secret is too short");
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const relays = parseRelays(url);
  const link: ShareLink = { host, port, fingerprint, secret, ...(relays.length > 0 ? { relays } : {}) };
  return url.searchParams.get("write") === "1" ? { ...link, write: true } : link;
}

function decodeParam(url: URL, name: string): Buffer {
  const value = url.searchParams.get(name);
  if (value === null || !/^[A-Za-z0-9_-]+$/.test(value)) {
    throw new TeleportError(ErrorCode.BAD_LINK, `link is missing its "${name}" parameter`);
  }
  return Buffer.from(value, "base64url");
}
