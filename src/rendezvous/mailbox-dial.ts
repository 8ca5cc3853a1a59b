/**
 * Dialing a mailbox: a relay's (HOST:PORT, as `--relay` names it) or a sender's own on the LAN.
 */
import { connect, type Socket } from "node:net";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { encodeRelayMessage, RelayType } from "../relay/relay-protocol.js";
import { MailboxConnection } from "./mailbox-connection.js";
import { MAILBOX_SERVICE } from "./mailbox-protocol.js";

export interface MailboxAddress {
  host: string;
  port: number;
}

/** How long a mailbox has to accept the connection. */
const CONNECT_MS = 10_000;

/** `HOST:PORT` or `[V6]:PORT`; USAGE when it is neither. */
export function parseMailboxAddress(text: string): MailboxAddress {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = Number(match?.[3]);
  const host = match?.[1] ?? match?.[2];
  if (host === undefined || !(port > 0 && port <= 65535))
    throw new TeleportError(
      ErrorCode.USAGE,
      `"${text}" is not HOST:PORT (a relay's address, as \`teleport relay\` prints it)`,
    );
  return { host, port };
}

export function formatMailboxAddress({ host, port }: MailboxAddress): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The mailbox mounted in a relay: SERVICE goes out at once, without waiting for the relay's
 * HELLO (the reader skips it), so claiming costs no extra round trip.
 */
export async function dialRelayMailbox(
  address: MailboxAddress,
  signal?: AbortSignal,
): Promise<MailboxConnection> {
  const socket = await dial(address, signal);
  socket.write(encodeRelayMessage({ type: RelayType.SERVICE, name: MAILBOX_SERVICE }));
  return MailboxConnection.overSocket(socket, { relayHello: true });
}

/** A sender's own mailbox on the LAN. */
export async function dialSenderMailbox(
  address: MailboxAddress,
  signal?: AbortSignal,
): Promise<MailboxConnection> {
  return MailboxConnection.overSocket(await dial(address, signal), { relayHello: false });
}

function dial(address: MailboxAddress, signal?: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: address.host, port: address.port });
    const fail = (err: unknown) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.destroy();
      reject(toTeleportError(err, `mailbox ${formatMailboxAddress(address)}`));
    };
    const onAbort = () => fail(new TeleportError(ErrorCode.CANCELLED, "cancelled"));
    const timer = setTimeout(
      () => fail(new TeleportError(ErrorCode.TIMEOUT, "the mailbox did not accept the connection in time")),
      CONNECT_MS,
    );
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("error", fail);
    socket.once("connect", () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.removeListener("error", fail);
      resolve(socket);
    });
  });
}
