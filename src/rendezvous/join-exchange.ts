/**
 * What a sender and a receiver say to each other through a mailbox once the receiver has
 * claimed the nameplate: SPAKE2 shares (the receiver's goes with its claim), each side's key
 * confirmation, then the link sealed under the PAKE's key, and "done" sealed back. The sender
 * (SPAKE2's A) sends the link only after the receiver's confirmation checked out, so a wrong code
 * learns nothing but that it was wrong; and either side that sees a confirmation fail ends the
 * offer (one guess per code).
 */
import { createCipheriv, createDecipheriv, hkdfSync } from "node:crypto";
import { ErrorCode, TeleportError } from "../errors.js";
import { codePassword, type JoinCode } from "./join-code.js";
import type { MailboxConnection } from "./mailbox-connection.js";
import {
  confirmationMatches,
  ownConfirmation,
  passwordScalar,
  type Spake2Context,
  type Spake2Keys,
  type Spake2Start,
  spake2Finish,
  spake2Start,
} from "./spake2.js";

/** Binds every exchange to this purpose and version: a share from another protocol does not fit. */
const PROTOCOL_LABEL = "teleport join code v1";
const CONTEXT: Spake2Context = {
  idA: Buffer.from("teleport send"),
  idB: Buffer.from("teleport receive"),
  aad: Buffer.from(PROTOCOL_LABEL),
};
/** How long either side waits for the other's next message once the exchange has begun. */
export const EXCHANGE_STEP_MS = 30_000;

/** What each message of the exchange is: its first byte. */
const Kind = { SHARE: 1, CONFIRMATION: 2, SEALED: 3 } as const;
type Kind = (typeof Kind)[keyof typeof Kind];

const DONE = "done";

/** The receiver's side before it has heard from a sender: its share goes out with each claim. */
export function receiverStart(code: JoinCode): { start: Spake2Start; shareMessage: Buffer } {
  const start = spake2Start("B", passwordScalar(codePassword(code), CONTEXT.aad));
  return { start, shareMessage: message(Kind.SHARE, start.share) };
}

/**
 * The sender's side, on a connection whose receiver has claimed the nameplate; resolves once
 * the receiver has the link. CODE_WRONG when the receiver's confirmation fails.
 */
export async function sendLink(connection: MailboxConnection, code: JoinCode, link: string): Promise<void> {
  const start = spake2Start("A", passwordScalar(codePassword(code), CONTEXT.aad));
  send(connection, Kind.SHARE, start.share);
  const keys = finishOrWrong(start, await receive(connection, Kind.SHARE), "a receiver");
  send(connection, Kind.CONFIRMATION, ownConfirmation(keys, "A"));
  const confirmation = await receive(connection, Kind.CONFIRMATION);
  if (!confirmationMatches(keys, "A", confirmation)) throw wrongCode("a receiver tried a wrong code");
  send(connection, Kind.SEALED, seal(keys, "to receiver", Buffer.from(link)));
  const done = unseal(keys, "to sender", await receive(connection, Kind.SEALED));
  if (done.toString() !== DONE)
    throw new TeleportError(ErrorCode.PROTOCOL, "join code: the receiver did not say done");
}

/**
 * The receiver's side, once the sender's share has come (`senderShare`) on `connection`: the
 * link, after the sender's confirmation checked out. CODE_WRONG when it does not.
 */
export async function receiveLink(
  connection: MailboxConnection,
  start: Spake2Start,
  senderShare: Buffer,
): Promise<string> {
  const keys = finishOrWrong(start, senderShare, "the sender");
  send(connection, Kind.CONFIRMATION, ownConfirmation(keys, "B"));
  const confirmation = await receive(connection, Kind.CONFIRMATION);
  if (!confirmationMatches(keys, "B", confirmation)) throw wrongCode("the code is wrong");
  const link = unseal(keys, "to receiver", await receive(connection, Kind.SEALED)).toString();
  send(connection, Kind.SEALED, seal(keys, "to sender", Buffer.from(DONE)));
  return link;
}

/** A share that is not a point (a hostile or broken peer) ends the offer as a wrong code would. */
function finishOrWrong(start: Spake2Start, share: Buffer, who: string): Spake2Keys {
  try {
    return spake2Finish(start, share, CONTEXT);
  } catch (err) {
    throw wrongCode(`${who} sent a share that is not a valid point`, err);
  }
}

function wrongCode(why: string, cause?: unknown): TeleportError {
  return new TeleportError(ErrorCode.CODE_WRONG, `${why}: the offer is closed`, { cause });
}

function message(kind: Kind, body: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([kind]), body]);
}

function send(connection: MailboxConnection, kind: Kind, body: Uint8Array): void {
  connection.send({ type: "message", body: message(kind, body) });
}

/** The next message's body, which must be of `kind`; a refusal from the mailbox says why. */
async function receive(connection: MailboxConnection, kind: Kind): Promise<Buffer> {
  const frame = await connection.next(EXCHANGE_STEP_MS);
  if (frame.type === "refused") throw refusalError(frame.refusal);
  if (frame.type !== "message")
    throw new TeleportError(
      ErrorCode.PROTOCOL,
      `join code: a ${frame.type} frame in the middle of the exchange`,
    );
  return expectKind(frame.body, kind);
}

/** The sender's share: what a receiver waits for on each path it claimed on. */
export function awaitSenderShare(connection: MailboxConnection, timeoutMs: number): Promise<Buffer> {
  return connection.next(timeoutMs).then((frame) => {
    if (frame.type === "refused") throw refusalError(frame.refusal);
    if (frame.type !== "message")
      throw new TeleportError(
        ErrorCode.PROTOCOL,
        `join code: a ${frame.type} frame before the sender's share`,
      );
    return expectKind(frame.body, Kind.SHARE);
  });
}

function expectKind(body: Buffer, kind: Kind): Buffer {
  if (body[0] !== kind)
    throw new TeleportError(ErrorCode.PROTOCOL, `join code: expected message kind ${kind}, got ${body[0]}`);
  return body.subarray(1);
}

/** The error a mailbox's refusal means to whoever asked. */
export function refusalError(refusal: string): TeleportError {
  switch (refusal) {
    case "used":
      return new TeleportError(ErrorCode.CODE_USED, "this code was already used");
    case "expired":
      return new TeleportError(ErrorCode.CODE_EXPIRED, "this code expired");
    case "unknown":
      return new TeleportError(ErrorCode.CODE_NOT_FOUND, "no sender is waiting under this code's number");
    case "busy":
      return new TeleportError(
        ErrorCode.HOST_BUSY,
        "the mailbox holds all the offers it takes; try again later",
      );
    default:
      return new TeleportError(ErrorCode.PROTOCOL, "the mailbox refused the exchange");
  }
}

/**
 * AES-256-GCM under a key of its own for each direction, derived from SPAKE2's Ke: each key
 * seals one message, so a fixed nonce never repeats under a key.
 */
function directionKey(keys: Spake2Keys, direction: string): Buffer {
  return Buffer.from(hkdfSync("sha256", keys.ke, Buffer.alloc(0), `${PROTOCOL_LABEL} ${direction}`, 32));
}

const NONCE = Buffer.alloc(12);
const TAG_BYTES = 16;

function seal(keys: Spake2Keys, direction: string, plaintext: Buffer): Buffer {
  const cipher = createCipheriv("aes-256-gcm", directionKey(keys, direction), NONCE);
  const sealed = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([sealed, cipher.getAuthTag()]);
}

function unseal(keys: Spake2Keys, direction: string, sealed: Buffer): Buffer {
  if (sealed.length < TAG_BYTES)
    throw new TeleportError(ErrorCode.PROTOCOL, "join code: a sealed message too short");
  const decipher = createDecipheriv("aes-256-gcm", directionKey(keys, direction), NONCE);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)), decipher.final()]);
  } catch (err) {
    throw new TeleportError(ErrorCode.PROTOCOL, "join code: a sealed message does not open", { cause: err });
  }
}
