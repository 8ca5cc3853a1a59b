/**
 * The relay transport: TLS over TCP as tcp.ts does it, through a relay that splices the client's
 * connection to one the host makes (relay/relay-server.ts). The relay sees only ciphertext; the
 * host is pinned by the link's fingerprint and the client proves the link's secret over the TLS
 * session, end to end, exactly as on a direct connection. A client dials the relays the link
 * names (`&relay=HOST:PORT`), one after another until one splices it to the host; a host
 * "listens" on a relay by holding a registration there (relay-registration.ts), and serves the
 * spliced sockets in the thread that holds it.
 */
import type * as tls from "node:tls";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { RelayChannel } from "../relay/relay-channel.js";
import { formatRelayAddress, type RelayAddress, RelayType } from "../relay/relay-protocol.js";
import type { ShareLink } from "./link.js";
import { type RelayedSocket, RelayRegistration } from "./relay-registration.js";
import { connectTlsOver, createTlsServer, tlsStream } from "./tcp.js";
import { type DialOptions, HANDSHAKE_TIMEOUT_MS, type Transport, type TransportStream } from "./transport.js";

/** A stream over a relayed TLS socket: a TLS stream, counted as the relay's. */
function relayedStream(
  socket: tls.TLSSocket,
  rttMs: number | undefined,
  client?: RelayedSocket,
): TransportStream {
  const stream = tlsStream(socket, rttMs);
  return {
    ...stream,
    transport: "relay",
    ...(client === undefined ? {} : { remoteAddress: client.clientAddress, remotePort: client.clientPort }),
  };
}

/** A TLS stream to the link's host through `relay`. */
async function dialThrough(
  relay: RelayAddress,
  link: ShareLink,
  options: DialOptions,
): Promise<TransportStream> {
  const startedAt = performance.now();
  const timeoutMs = options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const channel = await RelayChannel.connect(relay, { signal: options.signal, timeoutMs });
  const connectedMs = performance.now() - startedAt;
  options.onConnected?.();
  channel.send({ type: RelayType.CONNECT, fingerprint: link.fingerprint });
  const answer = await channel.next({ signal: options.signal, timeoutMs });
  if (answer.type !== RelayType.SPLICED) {
    channel.close();
    throw new TeleportError(ErrorCode.PROTOCOL, `relay ${channel.where} answered CONNECT out of turn`);
  }
  const { socket, remainder } = channel.release();
  if (remainder.length > 0) socket.unshift(remainder);
  const where = `${link.host}:${link.port} through relay ${channel.where}`;
  const secured = await connectTlsOver(socket, link, where, { signal: options.signal, timeoutMs });
  // The relay's TCP handshake is the round trip measured: the host's leg is not seen from here.
  return relayedStream(secured, connectedMs);
}

export const relayTransport: Transport = {
  kind: "relay",
  name: "relay",
  available: true,
  encrypted: true,
  async dial(link, options = {}) {
    const relays = link.relays ?? [];
    if (relays.length === 0)
      throw new TeleportError(ErrorCode.CONNECTION, `the link to ${link.host}:${link.port} names no relay`);
    const failures: string[] = [];
    for (const relay of relays) {
      try {
        return await dialThrough(relay, link, options);
      } catch (err) {
        const error = toTeleportError(err);
        if (error.code === ErrorCode.CANCELLED || error.code === ErrorCode.FINGERPRINT) throw error;
        if (relays.length === 1) throw error;
        failures.push(`${formatRelayAddress(relay)}: ${error.detail}`);
      }
    }
    throw new TeleportError(ErrorCode.CONNECTION, `no relay reached the host (${failures.join("; ")})`);
  },
  /** `bind` is the relay's address: the host registers there, and serves what it splices. */
  async listen(identity, bind, onStream, options = {}) {
    const clients = new WeakMap<object, RelayedSocket>();
    // Node's TLS server keeps the socket it wrapped as `_parent`: the key to what the relay said of it.
    const onSecure = (socket: tls.TLSSocket & { _parent?: object }) =>
      onStream(relayedStream(socket, undefined, clients.get(socket._parent ?? socket)));
    const tlsServer = createTlsServer(identity, onSecure, options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
    const registration = new RelayRegistration(bind, identity, {
      onSocket: (accepted) => {
        clients.set(accepted.socket, accepted);
        options.tuneSocket?.(accepted.socket);
        tlsServer.emit("connection", accepted.socket);
      },
      onNotice: options.onNotice,
    });
    await registration.firstAttempt;
    return { transport: "relay", host: bind.host, port: bind.port, close: () => registration.close() };
  },
};
