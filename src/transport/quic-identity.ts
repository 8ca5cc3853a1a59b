/**
 * Identity over QUIC, with the same share link as TCP. The binding's TLS knows only libp2p
 * identities (an Ed25519 key per endpoint, mutual authentication, no certificate of ours, no
 * exporter), so:
 * - The host's QUIC key is derived from its master secret, and its X.509 key (the one the
 *   link's fingerprint pins) signs it: the endorsement. The host sends that certificate and
 *   signature first on every stream; the client checks the certificate against the
 *   fingerprint, the signature, and that the key is the one QUIC's handshake just proved the
 *   host holds. (The binding checks no server identity by itself: this check is what stops an
 *   impostor.)
 * - For the secret proof, both ends send a fresh nonce; the session binding is a hash of both
 *   nonces and both endpoints' keys. A relay between two QUIC sessions shows different keys on
 *   each, so a proof cannot be carried from one session to another.
 */
import {
  createHash,
  createHmac,
  createPrivateKey,
  randomBytes,
  sign,
  timingSafeEqual,
  verify,
  X509Certificate,
} from "node:crypto";
import { ErrorCode, TeleportError } from "../errors.js";
import type { HostIdentity } from "./identity.js";
import type { ShareLink } from "./link.js";
import type { HostEndorsement } from "./preamble.js";

const ENDORSEMENT_LABEL = Buffer.from("teleport quic host key\0");
const BINDING_LABEL = Buffer.from("teleport quic session\0");
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
/** A libp2p peer id's bytes before the key: an identity multihash of an Ed25519 public key. */
const PEER_ID_PREFIX = Buffer.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]);
/** libp2p's PrivateKey protobuf header: key type Ed25519, 64 bytes of key. */
const PRIVATE_KEY_PROTO_PREFIX = Buffer.from([0x08, 0x01, 0x12, 0x40]);

export interface Ed25519Key {
  /** libp2p's PrivateKey protobuf: key type Ed25519, then the seed and the public key. */
  proto: Buffer;
  publicKey: Buffer;
}

function ed25519Key(seed: Buffer): Ed25519Key {
  const privateKey = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
    format: "der",
    type: "pkcs8",
  });
  const publicKey = Buffer.from(privateKey.export({ format: "jwk" }).x as string, "base64url");
  return { proto: Buffer.concat([PRIVATE_KEY_PROTO_PREFIX, seed, publicKey]), publicKey };
}

/** A dialling endpoint's key: fresh, as a client has no identity of its own. */
export function clientKey(): Ed25519Key {
  return ed25519Key(randomBytes(32));
}

/** The host's QUIC key (the same across restarts), and its X.509 key's endorsement of it. */
export function hostKey(identity: HostIdentity): {
  key: Ed25519Key;
  endorsement: Omit<HostEndorsement, "nonce">;
} {
  const key = ed25519Key(createHmac("sha256", identity.masterSecret).update("teleport quic key").digest());
  const certificate = new X509Certificate(identity.certPem).raw;
  const signature = sign("sha256", Buffer.concat([ENDORSEMENT_LABEL, key.publicKey]), identity.keyPem);
  return { key, endorsement: { certificate, signature } };
}

/**
 * The host is the link's host only if its certificate is the pinned one, and that certificate's
 * key signed the QUIC key the handshake proved the host holds.
 */
export function checkEndorsement(link: ShareLink, endorsement: HostEndorsement, hostKey: Buffer): void {
  const fingerprint = createHash("sha256").update(endorsement.certificate).digest();
  let endorsed = false;
  if (fingerprint.length === link.fingerprint.length && timingSafeEqual(fingerprint, link.fingerprint)) {
    try {
      const certificate = new X509Certificate(endorsement.certificate);
      const signed = Buffer.concat([ENDORSEMENT_LABEL, hostKey]);
      endorsed = verify("sha256", signed, certificate.publicKey, endorsement.signature);
    } catch {
      endorsed = false;
    }
  }
  if (!endorsed) {
    throw new TeleportError(
      ErrorCode.FINGERPRINT,
      `host ${link.host}:${link.port} presented an identity that does not match the link`,
    );
  }
}

export function sessionBinding(
  hostKey: Buffer,
  clientKey: Buffer,
  clientNonce: Buffer,
  hostNonce: Buffer,
): Buffer {
  return createHash("sha256")
    .update(BINDING_LABEL)
    .update(hostKey)
    .update(clientKey)
    .update(clientNonce)
    .update(hostNonce)
    .digest();
}

/** The Ed25519 public key in a libp2p peer id ("12D3KooW..."), from a multiaddr's /p2p/ part. */
export function peerKey(multiaddr: string): Buffer {
  const id = multiaddr.split("/p2p/")[1] ?? "";
  const bytes = base58Decode(id);
  if (
    bytes?.length !== PEER_ID_PREFIX.length + 32 ||
    !bytes.subarray(0, PEER_ID_PREFIX.length).equals(PEER_ID_PREFIX)
  ) {
    throw new TeleportError(ErrorCode.PROTOCOL, `peer identity ${JSON.stringify(id)} is not an Ed25519 key`);
  }
  return bytes.subarray(PEER_ID_PREFIX.length);
}

/** "/ip4/1.2.3.4/udp/5/..." -> its address and port. */
export function peerAddress(multiaddr: string): { address: string; port: number } {
  const parts = multiaddr.split("/");
  return { address: parts[2] ?? "", port: Number(parts[4] ?? 0) };
}

const BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

function base58Decode(text: string): Buffer | undefined {
  let value = 0n;
  for (const char of text) {
    const digit = BASE58.indexOf(char);
    if (digit < 0) return undefined;
    value = value * 58n + BigInt(digit);
  }
  const hex = value === 0n ? "" : value.toString(16);
  let zeros = 0;
  while (text[zeros] === "1") zeros++;
  return Buffer.concat([Buffer.alloc(zeros), Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, "hex")]);
}
