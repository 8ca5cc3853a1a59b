/**
 * Where a NAT maps one of this process's UDP sockets, as the relay sees it (relay-protocol.ts,
 * REFLECT): over TCP the relay hands out a nonce and its UDP port; the nonce is sent in a
 * datagram from the socket in question (by its local port: the QUIC library's socket is not
 * JavaScript's to send from, see udp-punch.ts), and the relay answers over TCP with the address
 * and port the datagram came from. Datagrams may be lost: the nonce goes again every
 * RESEND_MS until the answer comes or the time is up.
 */
import { lookup } from "node:dns/promises";
import { connect, isIPv4, type Socket } from "node:net";
import { ErrorCode, TeleportError } from "../errors.js";
import {
  decodeRelayMessage,
  encodeReflectDatagram,
  encodeRelayMessage,
  RelayFrameDecoder,
  type RelayMessage,
  RelayType,
} from "../relay/relay-protocol.js";
import type { UdpEndpoint } from "../wire/punch-messages.js";
import { sendFromUdpPort } from "./udp-punch.js";

/** How long a reflection may take, connect to answer. */
export const REFLECT_TIMEOUT_MS = 3000;
const RESEND_MS = 200;

export interface RelayAddress {
  host: string;
  port: number;
}

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
  const socket = connect({ host: ip, port: relay.port });
  socket.unref(); // a punch tried beside a pull never holds the process open once the pull is done
  const timer = setTimeout(
    () =>
      socket.destroy(
        new TeleportError(
          ErrorCode.TIMEOUT,
          `relay ${ip}:${relay.port} did not reflect within ${timeoutMs} ms`,
        ),
      ),
    timeoutMs,
  );
  timer.unref();
  let resend: NodeJS.Timeout | undefined;
  try {
    const messages = relayMessages(socket);
    await expect(messages, RelayType.HELLO);
    socket.write(encodeRelayMessage({ type: RelayType.REFLECT }));
    const { nonce, udpPort } = await expect(messages, RelayType.REFLECT_NONCE);
    const datagram = encodeReflectDatagram(nonce);
    const send = () => sendFromUdpPort(localPort, ip, udpPort, datagram);
    send();
    resend = setInterval(send, RESEND_MS);
    resend.unref();
    const { address, port } = await expect(messages, RelayType.REFLECTED);
    if (!isIPv4(address)) throw new TeleportError(ErrorCode.PROTOCOL, `relay reflected a non-IPv4 address`);
    return { address, port };
  } finally {
    clearTimeout(timer);
    clearInterval(resend);
    socket.destroy();
  }
}

type MessageReader = () => Promise<RelayMessage>;

/** The relay's messages on `socket`, one per call; rejects when the socket ends or errs. */
function relayMessages(socket: Socket): MessageReader {
  const decoder = new RelayFrameDecoder();
  const ready: RelayMessage[] = [];
  let failure: Error | undefined;
  let waiter: (() => void) | undefined;
  const wake = () => {
    const resume = waiter;
    waiter = undefined;
    resume?.();
  };
  socket.on("data", (data: Buffer) => {
    try {
      decoder.push(data);
      for (let frame = decoder.next(); frame !== undefined; frame = decoder.next())
        ready.push(decodeRelayMessage(frame));
    } catch (err) {
      socket.destroy(err instanceof Error ? err : new Error(String(err)));
    }
    wake();
  });
  socket.on("error", (err) => {
    failure = err;
    wake();
  });
  socket.on("close", () => {
    failure ??= new TeleportError(ErrorCode.CONNECTION, "relay closed the connection");
    wake();
  });
  return async () => {
    for (;;) {
      const message = ready.shift();
      if (message !== undefined) return message;
      if (failure !== undefined) throw failure;
      await new Promise<void>((resolve) => {
        waiter = resolve;
      });
    }
  };
}

/** The next message, which must be of `type` (a REFUSED says why not). */
async function expect<T extends RelayType>(
  read: MessageReader,
  type: T,
): Promise<Extract<RelayMessage, { type: T }>> {
  const message = await read();
  if (message.type === type) return message as Extract<RelayMessage, { type: T }>;
  if (message.type === RelayType.REFUSED)
    throw new TeleportError(
      ErrorCode.CONNECTION,
      `relay refused to reflect: ${message.reason} ${message.detail}`,
    );
  throw new TeleportError(ErrorCode.PROTOCOL, `relay sent message type ${message.type} during a reflect`);
}
