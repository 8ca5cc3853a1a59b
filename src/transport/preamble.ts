/**
 * The preambles that open a plaintext stream and a QUIC stream, before any frame: each side's
 * fresh nonce (the session binding is made of both), and for QUIC the host's endorsement of its
 * key. They are codecs of the wire's kind (wire/codec.ts), each preamble a fixed size or
 * measured from its first bytes, so that a reader takes exactly its bytes and no more.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import {
  type Codec,
  createState,
  encodeWithHeadroom,
  fixedBytes,
  type State,
  struct,
  uint16,
} from "../wire/codec.js";

export const NONCE_BYTES = 32;
/** The plaintext client's first bytes; a TLS ClientHello's first is 0x16, this one's "t". */
const PLAIN_MAGIC = Buffer.from("teleport-plain/1");
const QUIC_MAGIC = Buffer.from("TPQ1");
/** A routed TCP stream's first bytes (before its TLS ClientHello): "T", neither TLS's nor plaintext's. */
const ROUTE_MAGIC = Buffer.from("TPR1");
/** The first byte by which a host's listener tells a routed stream from a TLS or plaintext one. */
export const ROUTED_STREAM_BYTE = ROUTE_MAGIC[0] as number;
/** The bytes that name where a routed stream goes (an upload stream's one-time token). */
export const ROUTE_BYTES = 16;
/** The largest certificate or signature a host may send in its QUIC preamble. */
const MAX_ENDORSEMENT_FIELD = 8192;

export interface NoncePreamble {
  nonce: Buffer;
}

/** The host's QUIC preamble: its certificate (DER), its X.509 key's signature over its QUIC key, its nonce. */
export interface HostEndorsement {
  certificate: Buffer;
  signature: Buffer;
  nonce: Buffer;
}

/** `codec` after a fixed magic, which decoding checks: what else comes is not a teleport peer's. */
function afterMagic<T>(magic: Buffer, codec: Codec<T>, peer: string): Codec<T> {
  const bytes = fixedBytes(magic.length);
  return {
    preencode(state, value) {
      bytes.preencode(state, magic);
      codec.preencode(state, value);
    },
    encode(state, value) {
      bytes.encode(state, magic);
      codec.encode(state, value);
    },
    decode(state) {
      if (!bytes.decode(state).equals(magic))
        throw new TeleportError(ErrorCode.PROTOCOL, `not a teleport ${peer} (preamble)`);
      return codec.decode(state);
    },
  };
}

const nonce = struct<NoncePreamble>({ nonce: fixedBytes(NONCE_BYTES) });

/**
 * A TCP stream routed before its TLS handshake: its magic and the route, in the clear, which say
 * only which thread of the host takes the connection (push/offered-streams.ts). The stream then
 * proves, inside TLS, everything it is let do by.
 */
export interface RoutePreamble {
  route: Buffer;
}
export const routePreamble = afterMagic(
  ROUTE_MAGIC,
  struct<RoutePreamble>({ route: fixedBytes(ROUTE_BYTES) }),
  "client",
);
export const ROUTE_PREAMBLE_BYTES = ROUTE_MAGIC.length + ROUTE_BYTES;

/** Plaintext: the client's magic and nonce; the host answers with its nonce. */
export const plainClientPreamble = afterMagic(PLAIN_MAGIC, nonce, "client");
export const plainHostPreamble = nonce;
/** QUIC: the client's magic and nonce; the host answers with hostEndorsement. */
export const quicClientPreamble = afterMagic(QUIC_MAGIC, nonce, "client");

const endorsementLengths = afterMagic(
  QUIC_MAGIC,
  struct<{ certificate: number; signature: number }>({ certificate: uint16, signature: uint16 }),
  "host",
);

/** Both lengths (u16) first, then the certificate, the signature and the nonce. */
export const hostEndorsement: Codec<HostEndorsement> = {
  preencode(state, value) {
    endorsementLengths.preencode(state, { certificate: 0, signature: 0 });
    state.end += value.certificate.length + value.signature.length + NONCE_BYTES;
  },
  encode(state, value) {
    const lengths = { certificate: value.certificate.length, signature: value.signature.length };
    endorsementLengths.encode(state, lengths);
    fixedBytes(lengths.certificate).encode(state, value.certificate);
    fixedBytes(lengths.signature).encode(state, value.signature);
    fixedBytes(NONCE_BYTES).encode(state, value.nonce);
  },
  decode(state) {
    const lengths = decodeLengths(state);
    return {
      certificate: fixedBytes(lengths.certificate).decode(state),
      signature: fixedBytes(lengths.signature).decode(state),
      nonce: fixedBytes(NONCE_BYTES).decode(state),
    };
  },
};

function decodeLengths(state: State): { certificate: number; signature: number } {
  const lengths = endorsementLengths.decode(state);
  if (lengths.certificate > MAX_ENDORSEMENT_FIELD || lengths.signature > MAX_ENDORSEMENT_FIELD)
    throw new TeleportError(ErrorCode.PROTOCOL, "QUIC preamble fields too large");
  return lengths;
}

/** Bytes of a host endorsement's fixed head, which says how long the whole is. */
export const ENDORSEMENT_HEAD_BYTES = measure(endorsementLengths, { certificate: 0, signature: 0 });

/** The length of the host endorsement whose first ENDORSEMENT_HEAD_BYTES are `head`. */
export function endorsementLength(head: Buffer): number {
  const lengths = decodeLengths(createState(head));
  return ENDORSEMENT_HEAD_BYTES + lengths.certificate + lengths.signature + NONCE_BYTES;
}

/** The bytes a fixed-size preamble takes. */
export function preambleBytes(codec: Codec<NoncePreamble>): number {
  return measure(codec, { nonce: Buffer.alloc(NONCE_BYTES) });
}

export function encodePreamble<T>(codec: Codec<T>, value: T): Buffer {
  return encodeWithHeadroom(codec, value, 0);
}

/** Decodes a whole preamble: its bytes are exactly the preamble, neither fewer nor more. */
export function decodePreamble<T>(codec: Codec<T>, bytes: Buffer): T {
  const state = createState(bytes);
  const value = codec.decode(state);
  if (state.start !== state.end) throw new TeleportError(ErrorCode.PROTOCOL, "preamble too long");
  return value;
}

function measure<T>(codec: Codec<T>, value: T): number {
  const state = createState();
  codec.preencode(state, value);
  return state.end;
}
