/**
 * The mailbox's wire: how a sender takes a nameplate, how a receiver claims it, and the few
 * messages the mailbox forwards between the two (SPAKE2 shares, confirmations, then the link and
 * "done" sealed under the PAKE's key). Every frame is a 2-byte length and a body of at most
 * MAX_MAILBOX_BODY bytes: type, then its fields. Nothing here is secret; what matters is sealed
 * end to end (join-exchange.ts), so the mailbox, whoever runs it, learns nothing it could use.
 */
import { ErrorCode, TeleportError } from "../errors.js";

/** The largest body: a sealed link with several relay addresses fits with room to spare. */
export const MAX_MAILBOX_BODY = 2048;

export const MailboxType = {
  /** Sender -> mailbox: give me a nameplate, for this many seconds. */
  ALLOCATE: 0xa0,
  /** Mailbox -> sender: the nameplate, and the seconds it was granted. */
  ALLOCATED: 0xa1,
  /** Receiver -> mailbox (or a sender's own LAN mailbox): put me through to this nameplate. */
  CLAIM: 0xa2,
  /** Mailbox -> sender: a receiver claimed the nameplate; forwarded messages follow. */
  CLAIMED: 0xa3,
  /** Either side -> the other, through the mailbox: an opaque message. */
  MESSAGE: 0xa4,
  /** Mailbox -> either side: no, and why; the connection then closes. */
  REFUSED: 0xa5,
} as const;

/** Why a mailbox refused: each is a stable byte on the wire. */
export const REFUSALS = ["unknown", "used", "expired", "busy", "protocol"] as const;
export type Refusal = (typeof REFUSALS)[number];

export type MailboxFrame =
  | { type: "allocate"; expireSeconds: number }
  | { type: "allocated"; nameplate: number; expireSeconds: number }
  | { type: "claim"; nameplate: number }
  | { type: "claimed" }
  | { type: "message"; body: Buffer }
  | { type: "refused"; refusal: Refusal };

export function encodeMailboxFrame(frame: MailboxFrame): Buffer {
  const body = encodeBody(frame);
  const out = Buffer.allocUnsafe(2 + body.length);
  out.writeUInt16BE(body.length, 0);
  body.copy(out, 2);
  return out;
}

function encodeBody(frame: MailboxFrame): Buffer {
  switch (frame.type) {
    case "allocate":
      return withUint32(MailboxType.ALLOCATE, [frame.expireSeconds]);
    case "allocated":
      return withUint32(MailboxType.ALLOCATED, [frame.nameplate, frame.expireSeconds]);
    case "claim":
      return withUint32(MailboxType.CLAIM, [frame.nameplate]);
    case "claimed":
      return Buffer.from([MailboxType.CLAIMED]);
    case "message":
      if (frame.body.length + 1 > MAX_MAILBOX_BODY)
        throw new TeleportError(ErrorCode.INTERNAL, "mailbox message too large");
      return Buffer.concat([Buffer.from([MailboxType.MESSAGE]), frame.body]);
    case "refused":
      return Buffer.from([MailboxType.REFUSED, REFUSALS.indexOf(frame.refusal)]);
  }
}

function withUint32(type: number, values: number[]): Buffer {
  const out = Buffer.allocUnsafe(1 + 4 * values.length);
  out[0] = type;
  values.forEach((value, i) => {
    out.writeUInt32BE(value, 1 + 4 * i);
  });
  return out;
}

/** Decodes one body; anything malformed or of a length its type does not have is PROTOCOL. */
export function decodeMailboxBody(body: Buffer): MailboxFrame {
  const type = body[0];
  const fixed = (length: number) => {
    if (body.length !== length) throw malformed(`a frame of type ${type} has ${body.length} bytes`);
  };
  switch (type) {
    case MailboxType.ALLOCATE:
      fixed(5);
      return { type: "allocate", expireSeconds: body.readUInt32BE(1) };
    case MailboxType.ALLOCATED:
      fixed(9);
      return { type: "allocated", nameplate: body.readUInt32BE(1), expireSeconds: body.readUInt32BE(5) };
    case MailboxType.CLAIM:
      fixed(5);
      return { type: "claim", nameplate: body.readUInt32BE(1) };
    case MailboxType.CLAIMED:
      fixed(1);
      return { type: "claimed" };
    case MailboxType.MESSAGE:
      return { type: "message", body: Buffer.from(body.subarray(1)) };
    case MailboxType.REFUSED: {
      fixed(2);
      const refusal = REFUSALS[body[1] ?? 0xff];
      if (refusal === undefined) throw malformed(`unknown refusal ${body[1]}`);
      return { type: "refused", refusal };
    }
    default:
      throw malformed(`unknown frame type ${type}`);
  }
}

/**
 * Cuts a byte stream into frame bodies, holding at most one partial frame: a peer that announces
 * more than MAX_MAILBOX_BODY is refused before its bytes are buffered.
 */
export class MailboxFrameReader {
  #pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): MailboxFrame[] {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const frames: MailboxFrame[] = [];
    while (this.#pending.length >= 2) {
      const length = this.#pending.readUInt16BE(0);
      if (length === 0 || length > MAX_MAILBOX_BODY) throw malformed(`a frame of ${length} bytes`);
      if (this.#pending.length < 2 + length) break;
      frames.push(decodeMailboxBody(this.#pending.subarray(2, 2 + length)));
      this.#pending = this.#pending.subarray(2 + length);
    }
    return frames;
  }
}

function malformed(what: string): TeleportError {
  return new TeleportError(ErrorCode.PROTOCOL, `mailbox: ${what}`);
}
