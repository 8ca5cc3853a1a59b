/**
 * SPAKE2 (RFC 9382) over P-256 with SHA-256, HKDF and HMAC: the suite SPAKE2-P256-SHA256-HKDF-HMAC
 * of the RFC's section 6, checked against its test vectors (test/unit/spake2.test.ts). Two sides
 * that share a low-entropy password agree on a strong key; whoever sees or even takes part in the
 * exchange learns at most whether one guess of the password was right. The curve arithmetic is
 * @noble/curves' (docs/decisions.md, "SPAKE2 on @noble/curves").
 */
import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import { p256 } from "@noble/curves/nist.js";
import { ErrorCode, TeleportError } from "../errors.js";

type Point = InstanceType<typeof p256.Point>;

/** The RFC's fixed points for P-256 (section 6), whose discrete logs nobody knows. */
export const SPAKE2_M = "02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f";
export const SPAKE2_N = "03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49";

const M = p256.Point.fromHex(SPAKE2_M);
const N = p256.Point.fromHex(SPAKE2_N);
const ORDER = p256.Point.CURVE().n;
const SCALAR_BYTES = 32;
/** An uncompressed SEC1 point: 0x04, x, y. */
export const SPAKE2_SHARE_BYTES = 65;
/** HMAC-SHA256's output: each side's key confirmation. */
export const SPAKE2_CONFIRMATION_BYTES = 32;

/** A (who sends pA = w*M + X) or B (pB = w*N + Y); both sides must agree who is which. */
export type Spake2Role = "A" | "B";

/** What binds an exchange to its parties and purpose (RFC 9382 sections 3.2 and 4). */
export interface Spake2Context {
  idA: Uint8Array;
  idB: Uint8Array;
  /** Additional data bound into the confirmation keys. */
  aad: Uint8Array;
}

/** One side's half of an exchange: its share to send, and what it needs to finish. */
export interface Spake2Start {
  role: Spake2Role;
  /** pA or pB, to send to the other side. */
  share: Uint8Array;
  readonly w: bigint;
  readonly scalar: bigint;
}

/** The key schedule of section 4, as both sides compute it. */
export interface Spake2Keys {
  transcript: Uint8Array;
  /** The shared key, for the application (16 bytes with SHA-256). */
  ke: Uint8Array;
  ka: Uint8Array;
  kcA: Uint8Array;
  kcB: Uint8Array;
  /** MAC(KcA, TT): what A sends to prove it holds the key. */
  confirmationA: Uint8Array;
  /** MAC(KcB, TT): what B sends. */
  confirmationB: Uint8Array;
}

/**
 * The password scalar w: HKDF-SHA256 of the password stretched to 48 bytes, 128 bits more than
 * the group's order, so that reducing it mod p leaves no measurable bias (section 3.2). No
 * memory-hard function: an attacker gets one online guess per exchange and no transcript to
 * test guesses against offline, which is what SPAKE2 is for.
 */
export function passwordScalar(password: Uint8Array, context: Uint8Array): bigint {
  const stretched = Buffer.from(hkdfSync("sha256", password, Buffer.alloc(0), context, 48));
  const w = bigintOf(stretched) % ORDER;
  if (w === 0n) throw new TeleportError(ErrorCode.INTERNAL, "SPAKE2: the password's scalar is zero");
  return w;
}

/** Starts one side: a fresh random scalar unless a test gives one (the RFC's vectors do). */
export function spake2Start(role: Spake2Role, w: bigint, scalar: bigint = randomScalar()): Spake2Start {
  if (w <= 0n || w >= ORDER || scalar <= 0n || scalar >= ORDER)
    throw new TeleportError(ErrorCode.INTERNAL, "SPAKE2: scalar out of range");
  const blind = role === "A" ? M : N;
  const share = p256.Point.BASE.multiply(scalar).add(blind.multiply(w)).toBytes(false);
  return { role, share, w, scalar };
}

/**
 * Finishes an exchange with the other side's share: checks it (an uncompressed point on the
 * curve, not the identity), computes K and the key schedule. A wrong password is not seen here;
 * it shows as a confirmation that does not verify (`confirmationMatches`).
 */
export function spake2Finish(start: Spake2Start, peerShare: Uint8Array, context: Spake2Context): Spake2Keys {
  const peer = decodeShare(peerShare);
  const peerBlind = start.role === "A" ? N : M;
  const k = peer.subtract(peerBlind.multiply(start.w)).multiply(start.scalar);
  if (k.is0()) throw new TeleportError(ErrorCode.PROTOCOL, "SPAKE2: the peer's share gives the identity");
  const [pA, pB] = start.role === "A" ? [start.share, peerShare] : [peerShare, start.share];
  const transcript = transcriptOf(context, pA, pB, k.toBytes(false), scalarBytes(start.w));
  const digest = createHash("sha256").update(transcript).digest();
  const ke = digest.subarray(0, 16);
  const ka = digest.subarray(16);
  const info = Buffer.concat([Buffer.from("ConfirmationKeys"), context.aad]);
  const confirmationKeys = Buffer.from(hkdfSync("sha256", ka, Buffer.alloc(0), info, 32));
  const kcA = confirmationKeys.subarray(0, 16);
  const kcB = confirmationKeys.subarray(16);
  return {
    transcript,
    ke,
    ka,
    kcA,
    kcB,
    confirmationA: createHmac("sha256", kcA).update(transcript).digest(),
    confirmationB: createHmac("sha256", kcB).update(transcript).digest(),
  };
}

/** Whether `received` is the other side's confirmation, compared in constant time. */
export function confirmationMatches(keys: Spake2Keys, role: Spake2Role, received: Uint8Array): boolean {
  const expected = role === "A" ? keys.confirmationB : keys.confirmationA;
  return received.length === expected.length && timingSafeEqual(received, expected);
}

/** The confirmation `role` sends. */
export function ownConfirmation(keys: Spake2Keys, role: Spake2Role): Uint8Array {
  return role === "A" ? keys.confirmationA : keys.confirmationB;
}

function decodeShare(bytes: Uint8Array): Point {
  if (bytes.length !== SPAKE2_SHARE_BYTES || bytes[0] !== 0x04)
    throw new TeleportError(
      ErrorCode.PROTOCOL,
      "SPAKE2: the peer's share is not an uncompressed P-256 point",
    );
  let point: Point;
  try {
    point = p256.Point.fromBytes(bytes);
    point.assertValidity();
  } catch (err) {
    throw new TeleportError(ErrorCode.PROTOCOL, "SPAKE2: the peer's share is not on the curve", {
      cause: err,
    });
  }
  if (point.is0()) throw new TeleportError(ErrorCode.PROTOCOL, "SPAKE2: the peer's share is the identity");
  return point;
}

/** TT of section 3.3: each field preceded by its length as 8 bytes little-endian. */
function transcriptOf(
  context: Spake2Context,
  pA: Uint8Array,
  pB: Uint8Array,
  k: Uint8Array,
  w: Uint8Array,
): Uint8Array {
  const fields = [context.idA, context.idB, pA, pB, k, w];
  const parts: Buffer[] = [];
  for (const field of fields) {
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(field.length));
    parts.push(length, Buffer.from(field));
  }
  return Buffer.concat(parts);
}

function randomScalar(): bigint {
  return (bigintOf(randomBytes(48)) % (ORDER - 1n)) + 1n;
}

function bigintOf(bytes: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(bytes).toString("hex")}`);
}

function scalarBytes(scalar: bigint): Buffer {
  return Buffer.from(scalar.toString(16).padStart(SCALAR_BYTES * 2, "0"), "hex");
}
