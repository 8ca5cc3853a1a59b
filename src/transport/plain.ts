/**
 * Plaintext streams, for `--no-encryption` on a trusted network: TCP without TLS, so that a host
 * can send chunk data straight from the page cache (sendfile) and neither side spends a cycle
 * on a cipher. They share the TLS listener's port, told apart by their first byte.
 *
 * A plaintext stream is still authenticated: the client proves the link's secret with its HELLO
 * as on any stream, over a session binding made of a fresh nonce from each side, so a proof
 * seen on the wire cannot be replayed. It is neither confidential nor tamper-proof, and so it
 * carries nothing that needs to be: a host serves chunks over it and nothing else, and the
 * client checks every chunk against the BLAKE3 hash its TLS control connection brought.
 *
 * Preamble: the client sends PLAIN_MAGIC and a nonce; the host answers with its own nonce.
 */
import { createHash, randomBytes } from "node:crypto";
import * as net from "node:net";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import type { ShareLink } from "./link.js";
import { type DialOptions, type TransportStream, tcpStreamBase, watchDial } from "./transport.js";

/** The client's first bytes; a TLS ClientHello's first is 0x16, this one's "t". */
const PLAIN_MAGIC = Buffer.from("teleport-plain/1");
const NONCE_BYTES = 32;
const BINDING_LABEL = "teleport-plain-binding/1";
const READ_BUFFER_BYTES = 256 * 1024;
/** The first byte of a TLS handshake record. */
export const TLS_HANDSHAKE_BYTE = 0x16;

/** Connects to the link's host without TLS (the host must allow it: Feature.PLAINTEXT). */
export function dialPlain(
  link: ShareLink,
  options: DialOptions & { timeoutMs: number },
): Promise<TransportStream> {
  const { timeoutMs } = options;
  const where = `${link.host}:${link.port}`;
  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    let rttMs: number | undefined;
    const clientNonce = randomBytes(NONCE_BYTES);
    // Reads land in one buffer of the stream's own (the frame decoder copies what it keeps),
    // not in a new 64 KiB allocation each: the client's bulk data comes this way.
    const socket: net.Socket = net.connect({
      host: link.host,
      port: link.port,
      onread: {
        buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
        // Always true: `false` would stop reading, and the stream's reader never pushes back
        // (nor is there a moment without one: the host sends nothing unasked).
        callback: (bytes, buffer) => {
          socket.emit("data", buffer.subarray(0, bytes));
          return true;
        },
      },
    });
    const { signal } = options;
    const { fail, settle } = watchDial(socket, where, { handshake: "plaintext", timeoutMs, signal }, reject);
    socket.once("connect", () => {
      rttMs = performance.now() - startedAt;
      socket.write(Buffer.concat([PLAIN_MAGIC, clientNonce]));
    });
    readPreamble(socket, NONCE_BYTES).then(
      (hostNonce) => {
        settle();
        resolve(plainStream(socket, binding(clientNonce, hostNonce), rttMs));
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
  readPreamble(socket, PLAIN_MAGIC.length + NONCE_BYTES).then(
    (preamble) => {
      clearTimeout(timer);
      if (!preamble.subarray(0, PLAIN_MAGIC.length).equals(PLAIN_MAGIC)) {
        socket.destroy();
        return;
      }
      const hostNonce = randomBytes(NONCE_BYTES);
      socket.write(hostNonce);
      onStream(plainStream(socket, binding(preamble.subarray(PLAIN_MAGIC.length), hostNonce), undefined));
    },
    () => {
      clearTimeout(timer);
      socket.destroy();
    },
  );
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

function plainStream(socket: net.Socket, sessionBinding: Buffer, rttMs: number | undefined): TransportStream {
  return {
    ...tcpStreamBase(socket, rttMs),
    encrypted: false,
    plainSocket: socket,
    sessionBinding: () => sessionBinding,
  };
}
