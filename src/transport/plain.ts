/**
 * Plaintext streams, for `--no-encryption` on a trusted network: TCP without TLS, so that a host
 * can send chunk data straight from the page cache (sendfile) and neither side spends a cycle
 * on a cipher. A host takes them on its TLS listener's port, told apart by their first byte
 * (tcp.ts), when it allows them.
 *
 * A plaintext stream is still authenticated: the client proves the link's secret with its HELLO
 * as on any stream, over a session binding made of a fresh nonce from each side, so a proof
 * seen on the wire cannot be replayed. It is neither confidential nor tamper-proof, nor does it
 * prove the host's identity, and so it carries nothing that needs to be: a host serves chunks
 * over it and nothing else, and the client checks every chunk against the BLAKE3 hash its TLS
 * control connection brought.
 *
 * Preamble (preamble.ts): the client sends its magic and a nonce; the host answers with its own.
 */
import { createHash, randomBytes } from "node:crypto";
import * as net from "node:net";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { DirectReads } from "./direct-reads.js";
import type { ShareLink } from "./link.js";
import {
  decodePreamble,
  encodePreamble,
  NONCE_BYTES,
  plainClientPreamble,
  plainHostPreamble,
  preambleBytes,
} from "./preamble.js";
import { listenOn, tcpStreamBase, watchDial } from "./tcp-socket.js";
import { type DialOptions, HANDSHAKE_TIMEOUT_MS, type Transport, type TransportStream } from "./transport.js";

const BINDING_LABEL = "teleport-plain-binding/1";
const CLIENT_PREAMBLE_BYTES = preambleBytes(plainClientPreamble);
const HOST_PREAMBLE_BYTES = preambleBytes(plainHostPreamble);
/** The first byte of a TLS handshake record. */
export const TLS_HANDSHAKE_BYTE = 0x16;

/** Connects to the link's host without TLS (the host must allow it: Feature.PLAINTEXT). */
function dialPlain(link: ShareLink, options: DialOptions = {}): Promise<TransportStream> {
  const { timeoutMs = HANDSHAKE_TIMEOUT_MS, signal } = options;
  const where = `${link.host}:${link.port}`;
  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    let rttMs: number | undefined;
    const clientNonce = randomBytes(NONCE_BYTES);
    // The client's bulk data comes this way: reads land in place (direct-reads.ts). Nothing is
    // lost before the stream's reader listens: the host sends nothing unasked.
    const reads = new DirectReads();
    const socket = net.connect({ host: link.host, port: link.port, onread: reads.onread });
    reads.attach(socket);
    const { fail, settle } = watchDial(socket, where, { handshake: "plaintext", timeoutMs, signal }, reject);
    socket.once("connect", () => {
      rttMs = performance.now() - startedAt;
      socket.write(encodePreamble(plainClientPreamble, { nonce: clientNonce }));
    });
    readPreamble(socket, HOST_PREAMBLE_BYTES).then(
      (preamble) => {
        settle();
        const hostNonce = decodePreamble(plainHostPreamble, preamble).nonce;
        resolve(plainStream(socket, binding(clientNonce, hostNonce), rttMs, reads));
      },
      (err: unknown) =>
        fail(
          new TeleportError(
            ErrorCode.CONNECTION,
            `${where} ended the plaintext handshake (${toTeleportError(err).detail}): does it allow --no-encryption?`,
          ),
        ),
    );
  });
}

/**
 * Takes a connection whose first byte said it is not TLS: answers a teleport client's preamble
 * and hands the stream on, or drops what is not one (or not in time).
 */
export function acceptPlain(
  socket: net.Socket,
  timeoutMs: number,
  onStream: (stream: TransportStream) => void,
): void {
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  socket.once("error", () => socket.destroy());
  readPreamble(socket, CLIENT_PREAMBLE_BYTES)
    .then((preamble) => {
      clearTimeout(timer);
      const clientNonce = decodePreamble(plainClientPreamble, preamble).nonce;
      const hostNonce = randomBytes(NONCE_BYTES);
      socket.write(encodePreamble(plainHostPreamble, { nonce: hostNonce }));
      onStream(plainStream(socket, binding(clientNonce, hostNonce), undefined));
    })
    .catch(() => {
      clearTimeout(timer);
      socket.destroy();
    });
}

/**
 * The first `bytes` the peer sends. It sends nothing more until answered, so nothing is read
 * past them (more is a protocol error), and the stream's next reader gets all that follows.
 */
function readPreamble(socket: net.Socket, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let length = 0;
    const done = (error?: Error) => {
      socket.off("data", onData);
      socket.off("close", onClose);
      if (error !== undefined) reject(error);
      else resolve(Buffer.concat(parts));
    };
    const onData = (data: Buffer) => {
      parts.push(Buffer.from(data)); // a view of a buffer the next read reuses
      length += data.length;
      if (length > bytes) done(new TeleportError(ErrorCode.PROTOCOL, "peer sent more than its preamble"));
      else if (length === bytes) done();
    };
    const onClose = () => done(new TeleportError(ErrorCode.CONNECTION, "connection closed"));
    socket.on("data", onData);
    socket.once("close", onClose);
    socket.resume();
  });
}

function binding(clientNonce: Buffer, hostNonce: Buffer): Buffer {
  return createHash("sha256").update(BINDING_LABEL).update(clientNonce).update(hostNonce).digest();
}

function plainStream(
  socket: net.Socket,
  sessionBinding: Buffer,
  rttMs: number | undefined,
  reads?: DirectReads,
): TransportStream {
  return {
    ...tcpStreamBase(socket, rttMs, reads),
    encrypted: false,
    plainSocket: socket,
    sessionBinding: () => sessionBinding,
  };
}

/**
 * Plaintext TCP as a transport. Its streams count as TCP's (`kind`): the same path, without the
 * cipher. Its own listener takes plaintext streams only; a host takes them beside TLS on one
 * port instead (tcpTransport with `allowPlaintext`).
 */
export const plainTransport: Transport = {
  kind: "tcp",
  name: "TCP without TLS",
  available: true,
  encrypted: false,
  dial: dialPlain,
  async listen(_identity, bind, onStream, options = {}) {
    const timeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    const server = net.createServer((socket) => acceptPlain(socket, timeoutMs, onStream));
    const listener = await listenOn(server, bind, options);
    return { transport: "tcp", ...listener };
  },
};
