/**
 * What teleport needs from a network transport, and nothing more: secure, ordered, reliable byte
 * streams between a client and a host, each authenticated twice (the host by the share link's
 * certificate fingerprint, the client by its proof of the link's secret). TLS over TCP
 * (tcp.ts) is one; everything above (Connection, the host's sessions, the pull's stream pool)
 * frames messages on `TransportStream.stream` and knows nothing else of the transport.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import type { HostIdentity } from "./identity.js";
import type { ShareLink } from "./link.js";

export type TransportKind = "tcp" | "quic";

/**
 * TCP keep-alive probes after this long without traffic: a NAT or firewall forgets an idle
 * connection in minutes, and a pull's data streams can idle while the manifest is walked.
 */
const KEEPALIVE_MS = 30_000;

/**
 * One authenticated byte stream to or from a host: a TLS socket, a stream of a QUIC connection,
 * or (`--no-encryption`, plain.ts) a plaintext TCP socket.
 */
export interface TransportStream {
  readonly transport: TransportKind;
  /** False for a plaintext stream: authenticated, but readable and changeable on the wire. */
  readonly encrypted: boolean;
  /** A plaintext stream's socket, which the host may write chunks to directly (sendfile). */
  readonly plainSocket?: Socket;
  /** The bytes. Ends and errors as the transport does; destroying it drops the stream. */
  readonly stream: Duplex;
  /** The peer, for logs and the host's per-address limits. */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /**
   * 32 bytes derived from this stream's secure session (a TLS exporter), the same on both ends
   * and on no other session: the client's proof of the share secret is bound to it, so it
   * cannot be replayed elsewhere.
   */
  sessionBinding(): Buffer;
  stats(): TransportStats;
}

export interface TransportStats {
  /** The latest round trip the transport knows of (its handshake's, where it measures no other). */
  rttMs: number | undefined;
  bytesSent: number;
  bytesReceived: number;
}

export interface DialOptions {
  signal?: AbortSignal;
  /** Gives up on a handshake not done within this long. */
  timeoutMs?: number;
}

export interface ListenOptions {
  /** Drops a peer whose handshake is not done within this long. */
  handshakeTimeoutMs?: number;
  /**
   * Called with each accepted TCP socket before its handshake, to set socket options (the
   * congestion control, TCP_NOTSENT_LOWAT). QUIC runs its own congestion control in user space: not called.
   */
  tuneSocket?: (socket: Socket) => void;
  /** TCP: also accepts plaintext streams (`host --allow-no-encryption`, see plain.ts). */
  allowPlaintext?: boolean;
}

export interface Listener {
  readonly transport: TransportKind;
  readonly host: string;
  readonly port: number;
  /**
   * Stops accepting, and resolves once the streams it accepted are closed as well (closing them
   * is their owners' part).
   */
  close(): Promise<void>;
}

export interface Transport {
  readonly kind: TransportKind;
  /** A new stream to the host `link` names, once the host has proven it is that host. */
  dial(link: ShareLink, options?: DialOptions): Promise<TransportStream>;
  /** Accepts streams from clients (not yet authenticated: their HELLO does that). */
  listen(
    identity: HostIdentity,
    bind: { host: string; port: number },
    onStream: (stream: TransportStream) => void,
    options?: ListenOptions,
  ): Promise<Listener>;
}

/**
 * What a TLS or plaintext stream over `socket` shares, the socket set up for frames: they go out
 * as they are written (requests and pings must not wait for Nagle's algorithm), and idle
 * connections are kept alive.
 */
export function tcpStreamBase(
  socket: Socket,
  rttMs: number | undefined,
): Pick<TransportStream, "transport" | "stream" | "remoteAddress" | "remotePort" | "stats"> {
  socket.setNoDelay(true);
  socket.setKeepAlive(true, KEEPALIVE_MS);
  return {
    transport: "tcp",
    stream: socket,
    remoteAddress: socket.remoteAddress ?? "",
    remotePort: socket.remotePort ?? 0,
    stats: () => ({ rttMs, bytesSent: socket.bytesWritten, bytesReceived: socket.bytesRead }),
  };
}

/** A dial under way (see watchDial). */
export interface DialWatch {
  /** Destroys the socket and rejects the dial with `error`. */
  fail(error: TeleportError): void;
  /** Stops watching: the stream is handed over. */
  settle(): void;
}

/**
 * What every TCP dial does until its stream is ready: gives up with TIMEOUT when no `handshake`
 * is done within `timeoutMs`, with CANCELLED when `signal` aborts, and with the socket's own
 * error, destroying the socket each time.
 */
export function watchDial(
  socket: Socket,
  where: string,
  options: { handshake: string; timeoutMs: number; signal?: AbortSignal | undefined },
  reject: (error: TeleportError) => void,
): DialWatch {
  const { handshake, timeoutMs, signal } = options;
  const fail = (error: TeleportError) => {
    settle();
    socket.destroy();
    reject(error);
  };
  const timeout = () =>
    fail(
      new TeleportError(ErrorCode.TIMEOUT, `no ${handshake} handshake with ${where} within ${timeoutMs} ms`),
    );
  const timer = setTimeout(timeout, timeoutMs);
  const onAbort = () => fail(new TeleportError(ErrorCode.CANCELLED, "connect cancelled"));
  const onError = (err: Error) => fail(toTeleportError(err, `connecting to ${where}`));
  const settle = () => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    socket.off("error", onError);
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  socket.once("error", onError);
  return { fail, settle };
}

/** HMAC of the stream's session binding under the share secret (the client's HELLO carries it). */
export function authProof(stream: TransportStream, secret: Buffer): Buffer {
  return createHmac("sha256", secret).update(stream.sessionBinding()).digest();
}

export function verifyAuthProof(stream: TransportStream, secret: Buffer, proof: Buffer): boolean {
  const expected = authProof(stream, secret);
  return proof.length === expected.length && timingSafeEqual(proof, expected);
}
