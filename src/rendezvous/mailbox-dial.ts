/**
 * Dialing a mailbox: a relay's (HOST:PORT, as `--relay` names it) or a sender's own on the LAN.
 */
import { connect, type Socket } from "node:net";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import {
  encodeRelayMessage,
  formatRelayAddress,
  type RelayAddress,
  RelayType,
} from "../relay/relay-protocol.js";
import { MailboxConnection } from "./mailbox-connection.js";
import { MAILBOX_SERVICE } from "./mailbox-protocol.js";

/** A mailbox is where a relay is, or where a sender's LAN mailbox answered from. */
export type MailboxAddress = RelayAddress;

/** How long a mailbox has to accept the connection. */
const CONNECT_MS = 10_000;

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
      reject(toTeleportError(err, `mailbox ${formatRelayAddress(address)}`));
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
