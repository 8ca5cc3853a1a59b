/**
 * The bodies of PUNCH and PUNCH_READY (Feature.PUNCH): a client whose control connection runs
 * through a relay asks the host for a direct QUIC path (reach/). PUNCH names the UDP address the
 * relay saw the client's QUIC socket at, and the relay both sides reflect at; the host starts
 * punching from its QUIC socket towards that address and answers PUNCH_READY with its own, which
 * the client then dials. Kept apart from messages.ts, whose catalogue registers them.
 */
import { type Codec, struct, uint16, utf8 } from "./codec.js";

/** A dotted IPv4 address fits; a host name of DNS's longest does. */
const MAX_ADDRESS_BYTES = 64;
const MAX_HOST_NAME_BYTES = 253;

/** A UDP endpoint as a NAT maps it: "198.51.100.7", 40213. */
export interface UdpEndpoint {
  address: string;
  port: number;
}
const udpEndpoint: Codec<UdpEndpoint> = struct<UdpEndpoint>({
  address: utf8(MAX_ADDRESS_BYTES),
  port: uint16,
});

export interface PunchRequest {
  /** Where the relay saw the client's QUIC dialling socket. */
  client: UdpEndpoint;
  /** The relay the client reflected at, where the host reflects its own QUIC socket. */
  relayHost: string;
  relayPort: number;
}
export const punchRequestCodec: Codec<PunchRequest> = struct<PunchRequest>({
  client: udpEndpoint,
  relayHost: utf8(MAX_HOST_NAME_BYTES),
  relayPort: uint16,
});

/** Where the relay saw the host's QUIC socket; the host is punching towards the client. */
export interface PunchReady {
  host: UdpEndpoint;
}
export const punchReadyCodec: Codec<PunchReady> = struct<PunchReady>({ host: udpEndpoint });
