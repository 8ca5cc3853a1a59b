/**
 * The relay's own protocol: what is said on a TCP connection to `teleport relay` before (and
 * instead of) splicing. It is small on purpose: the relay never sees teleport's protocol, only
 * the TLS bytes it splices, so nothing here is trusted by the two ends beyond "this is a path".
 *
 * Frames are `[u16 length][u8 type][body]` (little-endian; `length` counts the type byte and the
 * body) and at most MAX_RELAY_FRAME_BYTES long; a decoder holds at most MAX_RELAY_BACKLOG_BYTES
 * unread. The relay opens every connection with HELLO (its version and a fresh nonce); the
 * connection's first frame says what it is for, and nothing else is taken on it:
 * - REGISTER: a host's control connection. The host signs the nonce with the key of its
 *   certificate; the relay registers it under the certificate's SHA-256 (the link's `fp`), so
 *   only the holder of that key can be reached under it. The relay sends INCOMING for each client,
 *   PING/PONG keep it alive, REFLECT may be asked on it.
 * - CONNECT: a client wants the host registered under a fingerprint. Answered by SPLICED (raw
 *   bytes follow, both ways, to and from the host's accept leg) or REFUSED.
 * - ACCEPT: the host's accept leg for one INCOMING token; SPLICED, then raw bytes.
 * - REFLECT: where does the relay see a UDP socket of mine? Answered by REFLECT_NONCE; the peer
 *   sends that nonce in a datagram (encodeReflectDatagram) to the relay's UDP port from the socket
 *   in question, and the relay answers REFLECTED with the address and port it saw.
 * - SERVICE: hands the connection to a service mounted in the relay (RelayService, such as the
 *   join-code mailbox); its frames are then the service's own, of types RELAY_SERVICE_TYPES.
 * Anything else, or anything out of its place, is answered by REFUSED with a reason, and closed.
 */
import { createHash, sign as signData, verify as verifySignature, X509Certificate } from "node:crypto";
import { ErrorCode, TeleportError } from "../errors.js";
import {
  type Codec,
  decodeMessage,
  encodeWithHeadroom,
  fixedBytes,
  struct,
  uint8,
  uint16,
  utf8,
} from "../wire/codec.js";

export const RELAY_PROTOCOL_VERSION = 1;

/** Where a relay listens (TCP, and UDP for reflecting, on the same port number). */
export interface RelayAddress {
  host: string;
  port: number;
}

/** `HOST:PORT`, an IPv6 host in brackets. */
export function formatRelayAddress(address: RelayAddress): string {
  return `${address.host.includes(":") ? `[${address.host}]` : address.host}:${address.port}`;
}

/** Reads `HOST:PORT` (`[V6]:PORT`), or throws a USAGE error saying what it expected. */
export function parseRelayAddress(text: string): RelayAddress {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text.trim());
  const port = Number(match?.[3]);
  const host = match?.[1] ?? match?.[2];
  if (match === null || host === undefined || !Number.isInteger(port) || port <= 0 || port > 65535)
    throw new TeleportError(ErrorCode.USAGE, `"${text}" is not a relay address (expected HOST:PORT)`);
  return { host, port };
}
/** The longest frame (type byte and body): a certificate and a signature fit with room to spare. */
export const MAX_RELAY_FRAME_BYTES = 4096;
/** The most bytes a decoder keeps unread: one socket read beyond a whole frame. */
export const MAX_RELAY_BACKLOG_BYTES = 128 * 1024;
const LENGTH_BYTES = 2;

export const NONCE_BYTES = 32;
export const TOKEN_BYTES = 16;
export const FINGERPRINT_BYTES = 32;
const MAX_CERTIFICATE_BYTES = 2048;
const MAX_SIGNATURE_BYTES = 160;
const MAX_ADDRESS_BYTES = 64;
const MAX_REASON_BYTES = 32;
const MAX_DETAIL_BYTES = 256;
/** A service's name (SERVICE): short ASCII, lower case. */
export const SERVICE_NAME_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

/** The relay's message types. Types in RELAY_SERVICE_TYPES belong to mounted services. */
export const RelayType = {
  HELLO: 0x01,
  REGISTERED: 0x02,
  INCOMING: 0x03,
  SPLICED: 0x04,
  REFUSED: 0x05,
  REFLECT_NONCE: 0x06,
  REFLECTED: 0x07,
  PING: 0x08,
  PONG: 0x09,
  REGISTER: 0x10,
  CONNECT: 0x11,
  ACCEPT: 0x12,
  REFLECT: 0x13,
  SERVICE: 0x14,
} as const;
export type RelayType = (typeof RelayType)[keyof typeof RelayType];

/** The frame types a mounted service may use for its own messages, both ways. */
export const RELAY_SERVICE_TYPES = { first: 0x40, last: 0x7f } as const;

export function isServiceType(type: number): boolean {
  return type >= RELAY_SERVICE_TYPES.first && type <= RELAY_SERVICE_TYPES.last;
}

/** Why the relay refused: stable words a peer can act on (a host re-registers, a client gives up). */
export const RefusalReason = {
  /** No host is registered under that fingerprint (or it is gone). */
  UNKNOWN_HOST: "unknown-host",
  /** A REGISTER whose signature does not verify with its certificate's key. */
  BAD_SIGNATURE: "bad-signature",
  /** A count the relay bounds is full (hosts, connections, pending connects). */
  FULL: "full",
  /** Too much, too fast: a rate the relay bounds. */
  RATE: "rate",
  /** The host did not accept in time, or a step of the exchange took too long. */
  TIMEOUT: "timeout",
  /** A frame the relay does not take here: wrong type, malformed, too large. */
  UNEXPECTED: "unexpected",
  /** A SERVICE no service mounted in this relay answers to. */
  NO_SERVICE: "no-service",
  /** Another control connection registered the same host (the newer one wins). */
  REPLACED: "replaced",
  /** The relay is shutting down. */
  CLOSING: "closing",
} as const;
export type RefusalReason = (typeof RefusalReason)[keyof typeof RefusalReason];
const REFUSAL_REASONS = new Set<string>(Object.values(RefusalReason));

/** Every message of the relay's own, one variant per type. */
export type RelayMessage =
  | { type: typeof RelayType.HELLO; version: number; nonce: Buffer }
  | { type: typeof RelayType.REGISTERED; fingerprint: Buffer }
  | { type: typeof RelayType.INCOMING; token: Buffer; clientAddress: string; clientPort: number }
  | { type: typeof RelayType.SPLICED }
  | { type: typeof RelayType.REFUSED; reason: RefusalReason; detail: string }
  | { type: typeof RelayType.REFLECT_NONCE; nonce: Buffer; udpPort: number }
  | { type: typeof RelayType.REFLECTED; address: string; port: number }
  | { type: typeof RelayType.PING }
  | { type: typeof RelayType.PONG }
  | { type: typeof RelayType.REGISTER; certificate: Buffer; signature: Buffer }
  | { type: typeof RelayType.CONNECT; fingerprint: Buffer }
  | { type: typeof RelayType.ACCEPT; token: Buffer }
  | { type: typeof RelayType.REFLECT }
  | { type: typeof RelayType.SERVICE; name: string };

type Body<T extends RelayType> = Omit<Extract<RelayMessage, { type: T }>, "type">;

/** Bytes prefixed with a u16 length, capped. */
function shortBytes(maxLength: number): Codec<Buffer> {
  return {
    preencode(state, value) {
      state.end += 2 + value.length;
    },
    encode(state, value) {
      if (value.length > maxLength) throw new RangeError(`byte string over ${maxLength} bytes`);
      state.buffer.writeUInt16LE(value.length, state.start);
      value.copy(state.buffer, state.start + 2);
      state.start += 2 + value.length;
    },
    decode(state) {
      const length = uint16.decode(state);
      if (length > maxLength || state.end - state.start < length)
        throw new TeleportError(ErrorCode.PROTOCOL, `relay byte string over ${maxLength} bytes or truncated`);
      const value = state.buffer.subarray(state.start, state.start + length);
      state.start += length;
      return value;
    },
  };
}

const empty: Codec<Record<string, never>> = struct({});

const BODIES: { [T in RelayType]: Codec<Body<T>> } = {
  [RelayType.HELLO]: struct({ version: uint8, nonce: fixedBytes(NONCE_BYTES) }),
  [RelayType.REGISTERED]: struct({ fingerprint: fixedBytes(FINGERPRINT_BYTES) }),
  [RelayType.INCOMING]: struct({
    token: fixedBytes(TOKEN_BYTES),
    clientAddress: utf8(MAX_ADDRESS_BYTES),
    clientPort: uint16,
  }),
  [RelayType.SPLICED]: empty,
  [RelayType.REFUSED]: struct({
    reason: utf8(MAX_REASON_BYTES) as Codec<RefusalReason>,
    detail: utf8(MAX_DETAIL_BYTES),
  }),
  [RelayType.REFLECT_NONCE]: struct({ nonce: fixedBytes(TOKEN_BYTES), udpPort: uint16 }),
  [RelayType.REFLECTED]: struct({ address: utf8(MAX_ADDRESS_BYTES), port: uint16 }),
  [RelayType.PING]: empty,
  [RelayType.PONG]: empty,
  [RelayType.REGISTER]: struct({
    certificate: shortBytes(MAX_CERTIFICATE_BYTES),
    signature: shortBytes(MAX_SIGNATURE_BYTES),
  }),
  [RelayType.CONNECT]: struct({ fingerprint: fixedBytes(FINGERPRINT_BYTES) }),
  [RelayType.ACCEPT]: struct({ token: fixedBytes(TOKEN_BYTES) }),
  [RelayType.REFLECT]: empty,
  [RelayType.SERVICE]: struct({ name: utf8(MAX_REASON_BYTES) }),
};

const RELAY_TYPES = new Set<number>(Object.values(RelayType));

/** One whole frame, ready to write: `[u16 length][u8 type][body]`. */
export function encodeRelayFrame(type: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const length = 1 + body.length;
  if (length > MAX_RELAY_FRAME_BYTES)
    throw new TeleportError(ErrorCode.FRAME_TOO_LARGE, `relay frame of ${length} bytes`);
  const frame = Buffer.allocUnsafe(LENGTH_BYTES + length);
  frame.writeUInt16LE(length, 0);
  frame[LENGTH_BYTES] = type;
  body.copy(frame, LENGTH_BYTES + 1);
  return frame;
}

/** A relay message as one frame. */
export function encodeRelayMessage(message: RelayMessage): Buffer {
  const { type, ...body } = message;
  const codec = BODIES[type] as Codec<typeof body>;
  const encoded = encodeWithHeadroom(codec, body, LENGTH_BYTES + 1);
  const length = encoded.length - LENGTH_BYTES;
  if (length > MAX_RELAY_FRAME_BYTES)
    throw new TeleportError(ErrorCode.FRAME_TOO_LARGE, `relay frame of ${length} bytes`);
  encoded.writeUInt16LE(length, 0);
  encoded[LENGTH_BYTES] = type;
  return encoded;
}

/**
 * Checks a frame of the relay's own and reads it, or throws a PROTOCOL error: an unknown type, a
 * body that does not decode, or fields out of their range (a version of 0, a refusal reason the
 * protocol does not name, a port of 0, a service name that is not one).
 */
export function decodeRelayMessage(frame: RelayFrame): RelayMessage {
  if (!RELAY_TYPES.has(frame.type))
    throw new TeleportError(ErrorCode.PROTOCOL, `relay message type 0x${frame.type.toString(16)} is not one`);
  const type = frame.type as RelayType;
  const message = { type, ...decodeMessage(BODIES[type] as Codec<object>, frame.body) } as RelayMessage;
  checkFields(message);
  return message;
}

function checkFields(message: RelayMessage): void {
  const bad = (what: string) => {
    throw new TeleportError(ErrorCode.PROTOCOL, `relay message ${what}`);
  };
  switch (message.type) {
    case RelayType.HELLO:
      if (message.version === 0) bad("HELLO has version 0");
      break;
    case RelayType.REFUSED:
      if (!REFUSAL_REASONS.has(message.reason)) bad(`REFUSED names no known reason`);
      break;
    case RelayType.REFLECT_NONCE:
      if (message.udpPort === 0) bad("REFLECT_NONCE has UDP port 0");
      break;
    case RelayType.REFLECTED:
    case RelayType.INCOMING: {
      const port = message.type === RelayType.REFLECTED ? message.port : message.clientPort;
      if (port === 0) bad("names port 0");
      break;
    }
    case RelayType.SERVICE:
      if (!SERVICE_NAME_PATTERN.test(message.name)) bad("SERVICE names no valid service");
      break;
    default:
      break;
  }
}

export interface RelayFrame {
  type: number;
  /** A view of the decoder's buffer: valid until the next `push`. */
  body: Buffer;
}

/**
 * Cuts a byte stream into relay frames, holding at most MAX_RELAY_BACKLOG_BYTES. It stops where
 * its reader stops asking: `remainder()` then gives back the bytes after the last frame read, for
 * the raw bytes that follow SPLICED (the first of a spliced TLS stream may share a read with it).
 */
export class RelayFrameDecoder {
  #buffer: Buffer = Buffer.alloc(0);

  /** Adds bytes read; throws FRAME_TOO_LARGE when more is held unread than the backlog allows. */
  push(data: Buffer): void {
    const held = this.#buffer.length + data.length;
    if (held > MAX_RELAY_BACKLOG_BYTES)
      throw new TeleportError(ErrorCode.FRAME_TOO_LARGE, `relay peer sent ${held} bytes unasked`);
    this.#buffer = this.#buffer.length === 0 ? data : Buffer.concat([this.#buffer, data]);
  }

  /** The next whole frame, or undefined until more bytes arrive; throws on an oversized length. */
  next(): RelayFrame | undefined {
    if (this.#buffer.length < LENGTH_BYTES) return undefined;
    const length = this.#buffer.readUInt16LE(0);
    if (length === 0 || length > MAX_RELAY_FRAME_BYTES)
      throw new TeleportError(ErrorCode.FRAME_TOO_LARGE, `relay frame of ${length} bytes`);
    if (this.#buffer.length < LENGTH_BYTES + length) return undefined;
    const type = this.#buffer[LENGTH_BYTES] as number;
    const body = this.#buffer.subarray(LENGTH_BYTES + 1, LENGTH_BYTES + length);
    this.#buffer = this.#buffer.subarray(LENGTH_BYTES + length);
    return { type, body };
  }

  /** The bytes after the last frame read (and forgets them). */
  remainder(): Buffer {
    const rest = this.#buffer;
    this.#buffer = Buffer.alloc(0);
    return rest;
  }
}

const REGISTRATION_CONTEXT = Buffer.from("teleport relay registration v1\0");

/** What a host signs to register: a fixed context, so the signature means nothing elsewhere, and the nonce. */
function registrationPayload(nonce: Buffer): Buffer {
  return Buffer.concat([REGISTRATION_CONTEXT, nonce]);
}

/** The host's REGISTER for a relay's HELLO nonce: its certificate and its signature of the nonce. */
export function signRegistration(
  identity: { keyPem: string; certPem: string },
  nonce: Buffer,
): Body<typeof RelayType.REGISTER> {
  const certificate = new X509Certificate(identity.certPem).raw;
  const signature = signData("sha256", registrationPayload(nonce), identity.keyPem);
  return { certificate, signature };
}

/**
 * The fingerprint (SHA-256 of the certificate) a REGISTER proves, or undefined when the
 * certificate does not parse or the signature does not verify with its key over `nonce`.
 */
export function verifyRegistration(
  register: Body<typeof RelayType.REGISTER>,
  nonce: Buffer,
): Buffer | undefined {
  try {
    const key = new X509Certificate(register.certificate).publicKey;
    if (!verifySignature("sha256", registrationPayload(nonce), key, register.signature)) return undefined;
  } catch {
    return undefined;
  }
  return createHash("sha256").update(register.certificate).digest();
}

const REFLECT_MAGIC = Buffer.from("TPRF");
/** The one datagram the relay's UDP port takes: "TPRF" and a REFLECT_NONCE's nonce. */
export const REFLECT_DATAGRAM_BYTES = REFLECT_MAGIC.length + TOKEN_BYTES;

export function encodeReflectDatagram(nonce: Buffer): Buffer {
  return Buffer.concat([REFLECT_MAGIC, nonce]);
}

/** The nonce a reflect datagram carries, or undefined for any other datagram. */
export function decodeReflectDatagram(datagram: Buffer): Buffer | undefined {
  if (datagram.length !== REFLECT_DATAGRAM_BYTES) return undefined;
  if (!datagram.subarray(0, REFLECT_MAGIC.length).equals(REFLECT_MAGIC)) return undefined;
  return Buffer.from(datagram.subarray(REFLECT_MAGIC.length));
}

/**
 * A connection handed to a mounted service (RelayService.open), or a client's connection to one
 * (relay-client.ts openRelayService): frames of the service's own types (RELAY_SERVICE_TYPES),
 * each at most MAX_RELAY_FRAME_BYTES, in both directions. The relay's bounds still apply to it
 * (its rate, its idle timeout, the count of connections).
 */
export interface RelayPeer {
  /** Where the peer's connection comes from, as the relay (or the client) sees it. */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Called with each frame in order; a frame outside RELAY_SERVICE_TYPES ends the connection. */
  onFrame(listener: (type: number, body: Buffer) => void): void;
  /** Called once when the connection ends, with the error that ended it, if one did. */
  onClose(listener: (error?: Error) => void): void;
  /** Sends one frame; throws a USAGE error for a type outside RELAY_SERVICE_TYPES. */
  send(type: number, body: Buffer): void;
  /** Sends REFUSED with a reason and a short detail, then closes. */
  refuse(reason: RefusalReason, detail: string): void;
  close(): void;
}

/**
 * A service mounted into the relay (`RelayServerOptions.services`): a connection whose first
 * frame is SERVICE with this name is handed to `open`, after which it is the service's.
 */
export interface RelayService {
  /** Matches SERVICE_NAME_PATTERN. */
  readonly name: string;
  open(peer: RelayPeer): void;
  /** Called once as the relay closes; ends what the service holds. */
  close?(): Promise<void> | void;
}

/** The HELLO the relay sends first on every connection. */
export function relayHello(nonce: Buffer): Buffer {
  return encodeRelayMessage({ type: RelayType.HELLO, version: RELAY_PROTOCOL_VERSION, nonce });
}
