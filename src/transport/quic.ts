/**
 * The QUIC transport: one QUIC connection per stream, as TCP has, so the pull's pool spreads over
 * connections, each with its own congestion window. It runs on the quinn binding
 * (quic-binding.ts); the host proves its identity with its endorsement (quic-identity.ts), sent
 * in the stream's preamble (preamble.ts). Where the binding is missing (another platform) the
 * transport says so, and `auto` uses TCP.
 */
import { randomBytes } from "node:crypto";
import { ErrorCode, TeleportError } from "../errors.js";
import type { HostIdentity } from "./identity.js";
import type { ShareLink } from "./link.js";
import {
  decodePreamble,
  ENDORSEMENT_HEAD_BYTES,
  encodePreamble,
  endorsementLength,
  hostEndorsement,
  NONCE_BYTES,
  preambleBytes,
  quicClientPreamble,
} from "./preamble.js";
import {
  Conn,
  clientEndpoint,
  holdEventLoop,
  isServerClosed,
  type QuinnConnection,
  type QuinnStream,
  quicAvailable,
  quicError,
  quinnServer,
} from "./quic-binding.js";
import {
  checkEndorsement,
  clientKey,
  hostKey,
  peerAddress,
  peerKey,
  sessionBinding,
} from "./quic-identity.js";
import { QuicStream } from "./quic-stream.js";
import {
  type DialOptions,
  HANDSHAKE_TIMEOUT_MS,
  type Listener,
  type ListenOptions,
  type Transport,
  type TransportStream,
} from "./transport.js";

export { quicAvailable, shutdownQuic } from "./quic-binding.js";

const MAX_CONNECTIONS = 4096;
/**
 * The binding's server answers a client only once an accept takes its connection, and each
 * accept holds it until the handshake is done: with 16, the handshakes of 32 pulls starting at
 * once (each with its data streams) queued long enough for clients to give up on the host.
 */
const ACCEPTS_WAITING = 256;
const CLIENT_PREAMBLE_BYTES = preambleBytes(quicClientPreamble);

/** Reads exactly `length` bytes from a stream not yet wrapped (a preamble). */
async function readExactly(stream: QuinnStream, length: number): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  let have = 0;
  while (have < length) {
    const part = await stream.read(length - have);
    if (part === null) throw new TeleportError(ErrorCode.CONNECTION, "stream ended during the QUIC preamble");
    parts.push(part);
    have += part.length;
  }
  return Buffer.concat(parts);
}

/** `work`, or a TIMEOUT after `ms`; what `work` gives too late goes to `onLate`. */
function withTimeout<T>(work: Promise<T>, ms: number, what: string, onLate: (value: T) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new TeleportError(ErrorCode.TIMEOUT, `${what}: nothing within ${ms} ms`));
    }, ms);
    work.then(
      (value) => {
        clearTimeout(timer);
        if (late) onLate(value);
        else resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        if (!late) reject(err);
      },
    );
  });
}

/** The host's endorsement, read in two steps: its fixed head says how long the rest is. */
async function readEndorsement(stream: QuinnStream) {
  const head = await readExactly(stream, ENDORSEMENT_HEAD_BYTES);
  const rest = await readExactly(stream, endorsementLength(head) - head.length);
  return decodePreamble(hostEndorsement, Buffer.concat([head, rest]));
}

async function dial(link: ShareLink, options: DialOptions = {}): Promise<TransportStream> {
  const { client, key } = clientEndpoint(clientKey);
  const timeoutMs = options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const handshakeTimeoutMs = Math.min(options.quicHandshakeTimeoutMs ?? timeoutMs, timeoutMs);
  const where = `${link.host}:${link.port}`;
  const started = performance.now();
  const connecting = client.outboundConnection(link.host, link.port).catch((err: unknown) => {
    throw quicError(err, `QUIC to ${where}`);
  });
  const connection = new Conn(
    await withTimeout(connecting, handshakeTimeoutMs, `QUIC handshake with ${where}`, (late) =>
      new Conn(late).abort(),
    ),
  );
  const handshakeMs = performance.now() - started;
  const abort = () => connection.abort();
  options.signal?.addEventListener("abort", abort, { once: true });
  try {
    const stream = await connection.raw.outboundStream();
    const clientNonce = randomBytes(NONCE_BYTES);
    await stream.write(encodePreamble(quicClientPreamble, { nonce: clientNonce }));
    const left = Math.max(1, timeoutMs - (performance.now() - started));
    const endorsement = await withTimeout(
      readEndorsement(stream),
      left,
      `QUIC preamble from ${where}`,
      () => {},
    );
    const hostKey = peerKey(connection.raw.remoteMultiaddr());
    checkEndorsement(link, endorsement, hostKey);
    const binding = sessionBinding(hostKey, key.publicKey, clientNonce, endorsement.nonce);
    return new QuicStream(connection, stream, binding, { address: link.host, port: link.port }, handshakeMs);
  } catch (err) {
    connection.abort();
    if (options.signal?.aborted) throw new TeleportError(ErrorCode.CANCELLED, "connect cancelled");
    throw quicError(err, `QUIC to ${where}`);
  } finally {
    options.signal?.removeEventListener("abort", abort);
  }
}

async function listen(
  identity: HostIdentity,
  bind: { host: string; port: number },
  onStream: (stream: TransportStream) => void,
  options: ListenOptions = {},
): Promise<Listener> {
  const { key, endorsement } = hostKey(identity);
  const server = quinnServer(key, bind.host, bind.port);
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const open = new Set<QuicStream>();
  const release = holdEventLoop();
  let connections = 0;
  let closing = false;

  /** Answers a client's preamble with the endorsement, and wraps the stream. */
  const start = async (connection: Conn): Promise<QuicStream> => {
    const stream = await connection.raw.inboundStream();
    const hello = decodePreamble(quicClientPreamble, await readExactly(stream, CLIENT_PREAMBLE_BYTES));
    const nonce = randomBytes(NONCE_BYTES);
    await stream.write(encodePreamble(hostEndorsement, { ...endorsement, nonce }));
    const remote = connection.raw.remoteMultiaddr();
    const binding = sessionBinding(key.publicKey, peerKey(remote), hello.nonce, nonce);
    return new QuicStream(connection, stream, binding, peerAddress(remote), undefined);
  };

  const accept = async (raw: QuinnConnection) => {
    const connection = new Conn(raw);
    connections++;
    connection.closed.then(() => connections--);
    if (connections > MAX_CONNECTIONS) return connection.abort();
    try {
      const stream = await withTimeout(start(connection), handshakeTimeoutMs, "QUIC preamble", (late) =>
        late.destroy(),
      );
      if (closing) return stream.destroy();
      open.add(stream);
      stream.once("close", () => open.delete(stream));
      onStream(stream);
    } catch {
      connection.abort(); // scanners, wrong protocol, slow clients: their problem, not ours
    }
  };

  // Several accepts wait at once: the binding resolves one only when its handshake is done, so
  // a single loop let one slow or lost handshake hold every other client back.
  const acceptLoop = async () => {
    while (!closing) {
      let connection: QuinnConnection;
      try {
        connection = await server.inboundConnection();
      } catch (err) {
        // The binding rejects an accept whose handshake failed (the peer closed it or went
        // silent) as well: only a closed server ends the loop, or failed handshakes would end
        // them all and the host would answer no QUIC client again.
        if (isServerClosed(err)) return;
        continue;
      }
      void accept(connection);
    }
  };
  const accepting = Promise.all(Array.from({ length: ACCEPTS_WAITING }, acceptLoop));

  return {
    transport: "quic",
    host: bind.host,
    port: server.port(),
    async close() {
      closing = true;
      await server.abort();
      await accepting;
      release();
      await Promise.all(
        [...open].map((stream) => new Promise<void>((resolve) => stream.once("close", () => resolve()))),
      );
    },
  };
}

export const quicTransport: Transport = {
  kind: "quic",
  name: "QUIC",
  available: quicAvailable,
  encrypted: true,
  dial,
  listen,
};
