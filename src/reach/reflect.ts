/**
 * Where a NAT maps one of this process's UDP sockets, as the relay sees it (relay-protocol.ts,
 * REFLECT): over TCP the relay hands out a nonce and its UDP port; the nonce is sent in a
 * datagram from the socket in question (by its local port: the QUIC library's socket is not
 * JavaScript's to send from, see udp-punch.ts), and the relay answers over TCP with the address
 * and port the datagram came from. Datagrams may be lost: the nonce goes again every
 * RESEND_MS until the answer comes or the time is up.
 */
import { lookup } from "node:dns/promises";
import { isIPv4 } from "node:net";
import { ErrorCode, TeleportError } from "../errors.js";
import { RelayChannel } from "../relay/relay-channel.js";
import {
  encodeReflectDatagram,
  type RelayAddress,
  type RelayMessage,
  RelayType,
} from "../relay/relay-protocol.js";
import type { UdpEndpoint } from "../wire/punch-messages.js";
import { sendFromUdpPort } from "./udp-punch.js";

/** How long a reflection may take, connect to answer. */
export const REFLECT_TIMEOUT_MS = 3000;
const RESEND_MS = 200;

/** The relay's IPv4 address: the datagram must go where the TCP connection went. */
async function relayIpv4(relay: RelayAddress): Promise<string> {
  if (isIPv4(relay.host)) return relay.host;
  const { address } = await lookup(relay.host, { family: 4 });
  return address;
}

/** The public address of the UDP socket bound to `localPort`, seen from `relay`. */
export async function reflectUdpPort(
  relay: RelayAddress,
  localPort: number,
  timeoutMs = REFLECT_TIMEOUT_MS,
): Promise<UdpEndpoint> {
  const ip = await relayIpv4(relay);
  const deadline = performance.now() + timeoutMs;
  // Each step gets what is left of the whole reflection's time.
  const step = () => ({ timeoutMs: Math.max(1, deadline - performance.now()) });
  const channel = await RelayChannel.connect({ host: ip, port: relay.port }, step());
  channel.socket.unref(); // a punch tried beside a pull never holds the process open once the pull is done
  let resend: NodeJS.Timeout | undefined;
  try {
    channel.send({ type: RelayType.REFLECT });
    const { nonce, udpPort } = expect(await channel.next(step()), RelayType.REFLECT_NONCE);
    const datagram = encodeReflectDatagram(nonce);
    const send = () => sendFromUdpPort(localPort, ip, udpPort, datagram);
    send();
    resend = setInterval(send, RESEND_MS);
    resend.unref();
    const { address, port } = expect(await channel.next(step()), RelayType.REFLECTED);
    if (!isIPv4(address)) throw new TeleportError(ErrorCode.PROTOCOL, `relay reflected a non-IPv4 address`);
    return { address, port };
  } finally {
    clearInterval(resend);
    channel.close();
  }
}

/** `message`, which must be of `type` (a REFUSED has already rejected, saying why). */
function expect<T extends RelayType>(message: RelayMessage, type: T): Extract<RelayMessage, { type: T }> {
  if (message.type === type) return message as Extract<RelayMessage, { type: T }>;
  throw new TeleportError(ErrorCode.PROTOCOL, `relay sent message type ${message.type} during a reflect`);
}
