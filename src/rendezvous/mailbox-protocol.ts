/**
 * The mailbox's wire: how a sender takes a nameplate, how a receiver claims it, and the few
 * messages the mailbox forwards between the two (SPAKE2 shares, confirmations, then the link and
 * "done" sealed under the PAKE's key). Frames are the relay's (`[u16 length][u8 type][body]`,
 * relay-protocol.ts), of types in its range for mounted services, whether they cross a relay or
 * go straight to a sender's own mailbox on the LAN. Nothing here is secret; what matters is
 * sealed end to end (join-exchange.ts), so the mailbox, whoever runs it, learns nothing it could use.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import {
  decodeRelayMessage,
  encodeRelayFrame,
  isServiceType,
  RelayFrameDecoder,
  RelayType,
} from "../relay/relay-protocol.js";

/** The name the mailbox is mounted under in `teleport relay` (its SERVICE frame). */
export const MAILBOX_SERVICE = "mailbox";

/** The largest body: a sealed link with several relay addresses fits with room to spare. */
export const MAX_MAILBOX_BODY = 2048;

export const MailboxType = {
  /** Sender -> mailbox: give me a nameplate, for this many seconds. */
  ALLOCATE: 0x40,
  /** Mailbox -> sender: the nameplate, and the seconds it was granted. */
  ALLOCATED: 0x41,
  /** Receiver -> mailbox (or a sender's own LAN mailbox): put me through to this nameplate. */
  CLAIM: 0x42,
  /** Mailbox -> sender: a receiver claimed the nameplate; forwarded messages follow. */
  CLAIMED: 0x43,
  /** Either side -> the other, through the mailbox: an opaque message. */
  MESSAGE: 0x44,
  /** Mailbox -> either side: no, and why; the connection then closes. */
  REFUSED: 0x45,
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

/** A frame as the relay's framing carries it: its type byte, and its body after. */
export function encodeMailboxFrame(frame: MailboxFrame): Buffer {
  const body = encodeBody(frame);
  return encodeRelayFrame(body[0] as number, body.subarray(1));
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

/** Decodes one frame; anything malformed or of a length its type does not have is PROTOCOL. */
export function decodeMailboxFrame(type: number, fields: Buffer): MailboxFrame {
  if (fields.length + 1 > MAX_MAILBOX_BODY) throw malformed(`a frame of ${fields.length + 1} bytes`);
  const body = Buffer.concat([Buffer.from([type]), fields]);
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
 * Cuts a byte stream into mailbox frames (the relay's decoder bounds what it holds, and refuses
 * a length over its cap before buffering it).
 */
export class MailboxFrameReader {
  readonly #decoder = new RelayFrameDecoder();
  /** A relay opens with its HELLO, before the mailbox's frames. */
  #helloDue: boolean;

  constructor(options: { relayHello: boolean }) {
    this.#helloDue = options.relayHello;
  }

  push(chunk: Buffer): MailboxFrame[] {
    this.#decoder.push(chunk);
    const frames: MailboxFrame[] = [];
    for (let frame = this.#decoder.next(); frame !== undefined; frame = this.#decoder.next()) {
      if (isServiceType(frame.type)) frames.push(decodeMailboxFrame(frame.type, frame.body));
      else this.#relayFrame(frame.type, frame.body);
    }
    return frames;
  }

  /** The relay's own frames: its HELLO once, first; its REFUSED (no mailbox there, a bound hit). */
  #relayFrame(type: number, body: Buffer): void {
    const message = decodeRelayMessage({ type, body });
    if (message.type === RelayType.HELLO && this.#helloDue) {
      this.#helloDue = false;
      return;
    }
    if (message.type === RelayType.REFUSED)
      throw new TeleportError(
        ErrorCode.RELAY_REFUSED,
        `the relay refused the mailbox: ${message.reason} ${message.detail}`,
      );
    throw malformed(`relay frame of type ${type} among the mailbox's`);
  }
}

function malformed(what: string): TeleportError {
  return new TeleportError(ErrorCode.PROTOCOL, `mailbox: ${what}`);
}
