/**
 * Every transport's implementation, by kind (transport.ts lists the kinds). Callers that pick a
 * transport by name (the host's listeners, the pool's data streams, `--transport`) look it up
 * here, so a new transport is one more line.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import { plainTransport } from "./plain.js";
import { quicTransport } from "./quic.js";
import { relayTransport } from "./relay.js";
import { tcpTransport } from "./tcp.js";
import { TRANSPORT_KINDS, type Transport, type TransportKind } from "./transport.js";

interface RegisteredTransport {
  transport: Transport;
  /** The same path without a cipher (`--no-encryption`), where the transport has one. */
  plaintext?: Transport;
  /** Reached through a relay the link names, not at the host's own address (relay.ts). */
  throughRelay?: boolean;
}

const TRANSPORTS: Readonly<Record<TransportKind, RegisteredTransport>> = {
  tcp: { transport: tcpTransport, plaintext: plainTransport },
  quic: { transport: quicTransport },
  relay: { transport: relayTransport, throughRelay: true },
};

/** The transport of `kind`; with `encrypted: false` its plaintext variant, which only TCP has. */
export function transportFor(kind: TransportKind, options: { encrypted?: boolean } = {}): Transport {
  const registered = TRANSPORTS[kind];
  if (options.encrypted !== false) return registered.transport;
  if (registered.plaintext === undefined)
    throw new TeleportError(
      ErrorCode.USAGE,
      `--no-encryption is for TCP: ${registered.transport.name} is always encrypted`,
    );
  return registered.plaintext;
}

/**
 * The transports this machine can use at a host's own address, in TRANSPORT_KINDS order: what
 * a host listens on, and what a pull's streams may move between. A relay is not one of them: a
 * host registers with the relays it is given, and a link names them.
 */
export function availableTransports(): TransportKind[] {
  return TRANSPORT_KINDS.filter(
    (kind) => TRANSPORTS[kind].transport.available && TRANSPORTS[kind].throughRelay !== true,
  );
}
