/**
 * Datagrams from the QUIC library's own UDP sockets, which it gives JavaScript no way to send
 * from: the addon finds the socket by its local port (platform/native.ts, native/udp.c). A punch
 * must leave from the socket QUIC then uses, or the NAT opens a mapping QUIC never sees. Without
 * the addon (another platform, TELEPORT_NATIVE=0) there is no punching, and pulls stay on the relay.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import { nativeUdp } from "../platform/native.js";
import type { UdpEndpoint } from "../wire/punch-messages.js";

/**
 * What a punch datagram holds: short, and with QUIC's fixed bit clear, so the QUIC endpoint at
 * the other end (the peer's, once its NAT lets it through) drops it as not QUIC.
 */
const PUNCH_DATAGRAM = Buffer.from([0x00, 0x54, 0x50, 0x50]);

/** Why this process cannot punch, or undefined when it can. */
export function whyNoPunching(): string | undefined {
  return nativeUdp === undefined ? "the native addon is not loaded (portable mode)" : undefined;
}

/** Sends `datagram` to `to` from this process's UDP socket bound to `localPort`. */
export function sendFromUdpPort(localPort: number, address: string, port: number, datagram: Buffer): void {
  if (nativeUdp === undefined) throw new TeleportError(ErrorCode.UNAVAILABLE, whyNoPunching() ?? "");
  nativeUdp.udpSendFrom(localPort, address, port, datagram);
}

export interface PunchSchedule {
  /** Datagrams in all. */
  count: number;
  intervalMs: number;
}

/**
 * Punches from `localPort` towards `to`: the first datagram at once (it opens our NAT's mapping
 * towards the peer before the peer's first packet comes), the rest spaced out, since the peer's
 * NAT drops those that come before the peer has sent anything. Returns the function that stops it.
 */
export function punchTowards(localPort: number, to: UdpEndpoint, schedule: PunchSchedule): () => void {
  let sent = 0;
  const send = () => {
    try {
      sendFromUdpPort(localPort, to.address, to.port, PUNCH_DATAGRAM);
    } catch {
      // An ICMP error from the peer's NAT (it has not punched yet) fails the next send: go on.
    }
    if (++sent >= schedule.count) clearInterval(timer);
  };
  const timer = setInterval(send, schedule.intervalMs);
  timer.unref();
  send();
  return () => clearInterval(timer);
}
