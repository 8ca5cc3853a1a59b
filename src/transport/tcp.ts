/**
 * The TCP transport: TLS 1.3 over TCP, one connection per stream. The host presents its self-signed certificate; the client accepts it only if
 * its SHA-256 fingerprint matches the share link. TLS 1.3's CertificateVerify makes the host prove
 * it holds the certificate's private key, so a copied certificate is useless to an impostor.
 * The client then proves it holds the link's secret with an HMAC over a TLS exporter value, which
 * binds the proof to this one session (it cannot be replayed on another connection).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { OnReadOpts } from "node:net";
import * as net from "node:net";
import * as tls from "node:tls";
import { ErrorCode, TeleportError } from "../errors.js";
import { DirectReads } from "./direct-reads.js";
import type { HostIdentity } from "./identity.js";
import type { ShareLink } from "./link.js";
import { acceptPlain, TLS_HANDSHAKE_BYTE } from "./plain.js";
import {
  decodePreamble,
  encodePreamble,
  ROUTE_PREAMBLE_BYTES,
  ROUTED_STREAM_BYTE,
  routePreamble,
} from "./preamble.js";
import { type ListenAddress, listenOn, tcpStreamBase, watchDial } from "./tcp-socket.js";
import {
  type DialOptions,
  HANDSHAKE_TIMEOUT_MS,
  type ListenOptions,
  type Transport,
  type TransportStream,
} from "./transport.js";

export { HANDSHAKE_TIMEOUT_MS } from "./transport.js";

const ALPN = "teleport/1";
const EXPORTER_LABEL = "EXPORTER-teleport-auth";
const EXPORTER_CONTEXT = Buffer.from(ALPN);
/**
 * AES-128-GCM first, as TLS 1.3's mandatory suite; the order buys no speed (docs/decisions.md),
 * and the TLS tasks of `node dist/bench/micro/run.js` measure it.
 */
const CIPHER_SUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

/**
 * Listens for TLS connections, and with `plaintext` for plaintext teleport streams on the same
 * port, and with `options.routeStream` for routed streams, told apart by their first byte (see
 * plain.ts, preamble.ts).
 */
export function listenTls(
  identity: Pick<HostIdentity, "keyPem" | "certPem">,
  bind: ListenAddress,
  onSocket: (socket: tls.TLSSocket) => void,
  options: ListenOptions = {},
  plaintext?: (stream: TransportStream) => void,
): ReturnType<typeof listenOn> {
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const tlsServer = createTlsServer(identity, onSocket, handshakeTimeoutMs);
  const { routeStream } = options;
  const server =
    plaintext === undefined && routeStream === undefined
      ? tlsServer
      : net.createServer((socket) =>
          route(socket, tlsServer, handshakeTimeoutMs, { plaintext, routeStream }),
        );
  return listenOn(server, bind, options);
}

/**
 * TLS on a TCP connection another thread accepted (its descriptor, and the bytes that thread read
 * past the stream's route), as the host's listener would take it; resolves once the handshake is
 * done.
 */
export function acceptTls(
  identity: Pick<HostIdentity, "keyPem" | "certPem">,
  fd: number,
  head: Uint8Array,
  timeoutMs = HANDSHAKE_TIMEOUT_MS,
): Promise<TransportStream> {
  const socket = new net.Socket({ fd, readable: true, writable: true });
  socket.pause();
  if (head.length > 0) socket.unshift(Buffer.from(head.buffer, head.byteOffset, head.byteLength));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    const failed = () => {
      clearTimeout(timer);
      reject(new TeleportError(ErrorCode.CONNECTION, "the routed stream ended before its TLS handshake"));
    };
    socket.once("close", failed);
    const server = createTlsServer(
      identity,
      (secured) => {
        clearTimeout(timer);
        socket.off("close", failed);
        resolve(tlsStream(secured, undefined));
      },
      timeoutMs,
    );
    server.emit("connection", socket);
  });
}

/**
 * The host's TLS server, listening on nothing: `listenTls` gives it its connections, and a relay
 * its spliced ones (transport/relay.ts), by emitting "connection" with each socket.
 */
export function createTlsServer(
  identity: Pick<HostIdentity, "keyPem" | "certPem">,
  onSocket: (socket: tls.TLSSocket) => void,
  handshakeTimeoutMs: number,
): tls.Server {
  const tlsServer = tls.createServer(
    {
      key: identity.keyPem,
      cert: identity.certPem,
      minVersion: "TLSv1.3",
      ciphers: CIPHER_SUITES,
      honorCipherOrder: true,
      ALPNProtocols: [ALPN],
      handshakeTimeout: handshakeTimeoutMs,
    },
    onSocket,
  );
  // Failed handshakes (scanners, wrong protocol, slow-loris) are the client's problem, not ours.
  tlsServer.on("tlsClientError", (_err, socket) => socket.destroy());
  return tlsServer;
}

/**
 * Hands a connection to the TLS server, to `plaintext` if its first byte is not TLS's, or, if it
 * starts with a route, to `routeStream` (and to the TLS server if that leaves it).
 */
function route(
  socket: net.Socket,
  tlsServer: tls.Server,
  timeoutMs: number,
  takers: {
    plaintext?: ((stream: TransportStream) => void) | undefined;
    routeStream?: ListenOptions["routeStream"];
  },
): void {
  const { plaintext, routeStream } = takers;
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  const onError = () => socket.destroy();
  socket.once("error", onError);
  let head: Buffer | undefined;
  const onData = (data: Buffer) => {
    const routed = routeStream !== undefined && (head ?? data)[0] === ROUTED_STREAM_BYTE;
    // A read's buffer may be reused by the next: a route's bytes are copied while they gather.
    head = head === undefined ? (routed ? Buffer.from(data) : data) : Buffer.concat([head, data]);
    if (routed && head.length < ROUTE_PREAMBLE_BYTES) return;
    clearTimeout(timer);
    socket.off("data", onData);
    socket.off("error", onError);
    socket.pause();
    if (routed) {
      takeRouted(socket, head, tlsServer, routeStream);
      return;
    }
    socket.unshift(head);
    if (head[0] === TLS_HANDSHAKE_BYTE) tlsServer.emit("connection", socket);
    else if (plaintext !== undefined) acceptPlain(socket, timeoutMs, plaintext);
    else socket.destroy();
  };
  socket.on("data", onData);
}

/** A routed stream: to whoever takes its route, else through TLS as any other; a bad preamble ends it. */
function takeRouted(
  socket: net.Socket,
  head: Buffer,
  tlsServer: tls.Server,
  routeStream: (route: Buffer, socket: net.Socket) => boolean,
): void {
  let route: Buffer;
  try {
    route = decodePreamble(routePreamble, head.subarray(0, ROUTE_PREAMBLE_BYTES)).route;
  } catch {
    socket.destroy();
    return;
  }
  const rest = head.subarray(ROUTE_PREAMBLE_BYTES);
  if (rest.length > 0) socket.unshift(rest);
  if (!routeStream(route, socket)) tlsServer.emit("connection", socket);
}

export interface TlsConnection {
  socket: tls.TLSSocket;
  reads: DirectReads;
  /**
   * How long the TCP handshake took: one round trip, answered by the host's kernel, so unlike a
   * ping it is not delayed by a host too busy to run its event loop.
   */
  tcpRttMs: number;
}

/**
 * Connects and verifies the host's certificate against the link's pinned fingerprint, giving up
 * after `timeoutMs` without a completed handshake.
 */
export function connectTls(
  link: ShareLink,
  signal?: AbortSignal,
  timeoutMs = HANDSHAKE_TIMEOUT_MS,
  onConnected?: () => void,
): Promise<TlsConnection> {
  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    let tcpRttMs = Number.POSITIVE_INFINITY;
    // Nothing is lost before the stream's reader listens: the host sends nothing unasked.
    const reads = new DirectReads();
    // Node takes `onread` for a TLS socket it connects itself, though its typings omit it.
    const connectOptions: tls.ConnectionOptions & { onread: OnReadOpts } = {
      host: link.host,
      port: link.port,
      minVersion: "TLSv1.3",
      ciphers: CIPHER_SUITES,
      ALPNProtocols: [ALPN],
      // Trust comes from the fingerprint check below, not from a CA chain.
      rejectUnauthorized: false,
      ...(isIpAddress(link.host) ? {} : { servername: link.host }),
      onread: reads.onread,
    };
    const socket = tls.connect(connectOptions);
    reads.attach(socket);
    const where = `${link.host}:${link.port}`;
    socket.once("connect", () => {
      tcpRttMs = performance.now() - startedAt;
      onConnected?.();
    });
    pinHost(socket, link, where, { timeoutMs, signal }, reject, () => resolve({ socket, reads, tcpRttMs }));
  });
}

/**
 * TLS over a connection already made (a relay's spliced socket, transport/relay.ts), the host
 * pinned by the link's fingerprint as connectTls pins it; `where` names the path for errors.
 */
export function connectTlsOver(
  socket: net.Socket,
  link: ShareLink,
  where: string,
  options: { signal?: AbortSignal | undefined; timeoutMs?: number | undefined } = {},
): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secured = tls.connect({
      socket,
      minVersion: "TLSv1.3",
      ciphers: CIPHER_SUITES,
      ALPNProtocols: [ALPN],
      rejectUnauthorized: false,
      ...(isIpAddress(link.host) ? {} : { servername: link.host }),
    });
    const timeoutMs = options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    pinHost(secured, link, where, { timeoutMs, signal: options.signal }, reject, () => resolve(secured));
  });
}

/** Watches a TLS dial to its end: the host's certificate must be the one the link pins. */
function pinHost(
  socket: tls.TLSSocket,
  link: ShareLink,
  where: string,
  options: { timeoutMs: number; signal?: AbortSignal | undefined },
  reject: (error: TeleportError) => void,
  resolve: () => void,
): void {
  const { fail, settle } = watchDial(socket, where, { handshake: "TLS", ...options }, reject);
  socket.once("secureConnect", () => {
    const cert = socket.getPeerX509Certificate();
    const actual = cert === undefined ? Buffer.alloc(0) : createHash("sha256").update(cert.raw).digest();
    if (actual.length !== link.fingerprint.length || !timingSafeEqual(actual, link.fingerprint)) {
      fail(
        new TeleportError(
          ErrorCode.FINGERPRINT,
          `host ${where} presented a certificate that does not match the link`,
        ),
      );
      return;
    }
    settle();
    resolve();
  });
}

export const tcpTransport: Transport = {
  kind: "tcp",
  name: "TCP",
  available: true,
  encrypted: true,
  async dial(link, options = {}) {
    if (options.route !== undefined) return dialRouted(link, options.route, options);
    const { socket, reads, tcpRttMs } = await connectTls(
      link,
      options.signal,
      options.timeoutMs,
      options.onConnected,
    );
    return tlsStream(socket, tcpRttMs, reads);
  },
  async listen(identity, bind, onStream, options = {}) {
    const listener = await listenTls(
      identity,
      bind,
      (socket) => onStream(tlsStream(socket, undefined)),
      options,
      options.allowPlaintext === true ? onStream : undefined,
    );
    return { transport: "tcp", host: listener.host, port: listener.port, close: listener.close };
  },
};

/**
 * Connects, sends `route` (routePreamble) ahead of the TLS handshake, then pins the host as
 * connectTls does. Its reads are the socket's own (a routed stream mostly sends).
 */
async function dialRouted(link: ShareLink, route: Buffer, options: DialOptions): Promise<TransportStream> {
  const { signal, timeoutMs = HANDSHAKE_TIMEOUT_MS } = options;
  const where = `${link.host}:${link.port}`;
  const startedAt = performance.now();
  const raw = await new Promise<{ socket: net.Socket; rttMs: number }>((resolve, reject) => {
    const socket = net.connect({ host: link.host, port: link.port });
    const { settle } = watchDial(socket, where, { handshake: "TCP", timeoutMs, signal }, reject);
    socket.once("connect", () => {
      const rttMs = performance.now() - startedAt;
      options.onConnected?.();
      socket.write(encodePreamble(routePreamble, { route }), () => {
        settle();
        resolve({ socket, rttMs });
      });
    });
  });
  const left = Math.max(1, timeoutMs - (performance.now() - startedAt));
  const secured = await connectTlsOver(raw.socket, link, where, { signal, timeoutMs: left });
  return tlsStream(secured, raw.rttMs);
}

/**
 * A TLS socket as a transport stream; `rttMs` is its TCP handshake's, where measured, and
 * `reads` how a socket we connected reads.
 */
export function tlsStream(
  socket: tls.TLSSocket,
  rttMs: number | undefined,
  reads?: DirectReads,
): TransportStream {
  return {
    ...tcpStreamBase(socket, rttMs, reads),
    encrypted: true,
    sessionBinding: () => socket.exportKeyingMaterial(32, EXPORTER_LABEL, EXPORTER_CONTEXT),
  };
}

function isIpAddress(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(":");
}
