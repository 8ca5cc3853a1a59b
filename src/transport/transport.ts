/**
 * What teleport needs from a network transport, and nothing more: ordered, reliable byte streams
 * between a client and a host, each authenticated twice (the host by the share link's
 * certificate fingerprint, the client by its proof of the link's secret). TLS over TCP (tcp.ts)
 * and QUIC (quic.ts) are secure ones; plaintext TCP (plain.ts) proves only the client, for data
 * streams under `--no-encryption`. Everything above (Connection, the host's sessions, the pull's
 * stream pool) frames messages on `TransportStream.stream` and knows nothing else of the
 * transport. test/helpers/transport-compliance.ts is what each must pass.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { ReadTarget } from "./direct-reads.js";
import type { HostIdentity } from "./identity.js";
import type { ShareLink } from "./link.js";

/**
 * The transports teleport has (registry.ts maps each to its implementation), in the order a host
 * listens on them: TCP's port first, as the one more likely taken; UDP's then follows it. A new
 * transport is a name here, its file, its line in registry.ts and its compliance run; what is
 * counted per transport (TransportCounts, the pool's shared counters) follows from this list.
 * `relay` is TLS over TCP through a relay the link names (relay.ts): a host listens there by
 * registering (`host --relay`), not on its own port.
 */
export const TRANSPORT_KINDS = ["tcp", "quic", "relay"] as const;
export type TransportKind = (typeof TRANSPORT_KINDS)[number];
/** What `pull --transport` takes: a kind, or `auto` to race them. */
export type TransportChoice = "auto" | TransportKind;
export const TRANSPORT_CHOICES: readonly TransportChoice[] = ["auto", ...TRANSPORT_KINDS];

/**
 * Which way the bytes went, as `pull --json` says it: straight to the host (TCP or QUIC to the
 * link's address), through a relay, or over a path punched through NAT.
 */
export type PathKind = "direct" | "relay" | "punched";
export const PATH_KINDS: readonly PathKind[] = ["direct", "relay", "punched"];

/** The path each transport's bytes take. */
export function pathOf(kind: TransportKind): PathKind {
  return kind === "relay" ? "relay" : "direct";
}

/** A number for each transport: bytes delivered, streams open. */
export type TransportCounts = Record<TransportKind, number>;

/** A TransportCounts with `count(kind)` for each transport (0 for each by default). */
export function transportCounts(count: (kind: TransportKind) => number = () => 0): TransportCounts {
  return Object.fromEntries(TRANSPORT_KINDS.map((kind) => [kind, count(kind)])) as TransportCounts;
}

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
  /**
   * Where the stream can read into a buffer its reader names (direct-reads.ts): from now on,
   * reads land where `target` says when it names one. Absent where reads land where they may.
   */
  readonly steerReads?: (target: ReadTarget) => void;
}

export interface TransportStats {
  /** The latest round trip the transport knows of (its handshake's, where it measures no other). */
  rttMs: number | undefined;
  bytesSent: number;
  bytesReceived: number;
}

/** How long a handshake may take, each step of it, unless told otherwise. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface DialOptions {
  signal?: AbortSignal;
  /** Gives up on a handshake not done within this long. */
  timeoutMs?: number;
  /**
   * QUIC: gives up sooner, after this long, on a host whose QUIC handshake is not done. The host's
   * QUIC library answers that handshake however busy the host is, so only a host that is not
   * there misses it; the preamble after it, answered by the host's event loop, gets timeoutMs.
   */
  quicHandshakeTimeoutMs?: number;
  /** TCP: told when the connection is up, before its handshake (the host's kernel answered). */
  onConnected?: () => void;
  /** TCP: the route to send before the TLS handshake (preamble.ts, routePreamble). */
  route?: Buffer | undefined;
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
  /** Relay: told when the registration is lost or refused, and when it is regained. */
  onNotice?: ((message: string) => void) | undefined;
  /**
   * TCP: takes the routed streams (preamble.ts, routePreamble) before their TLS handshake: given
   * the route and the socket (paused, its bytes after the preamble still to be read), it answers
   * whether it took the socket; one it leaves goes through TLS as any other.
   */
  routeStream?: ((route: Buffer, socket: Socket) => boolean) | undefined;
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
  /** For people: "TCP", "QUIC". */
  readonly name: string;
  /** False where this machine cannot use it (QUIC without its native binding). */
  readonly available: boolean;
  /**
   * False for a transport that neither hides nor protects the bytes, nor proves the host's
   * identity (plain.ts): it is for data streams, after an encrypted control connection has.
   */
  readonly encrypted: boolean;
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

/** HMAC of the stream's session binding under the share secret (the client's HELLO carries it). */
export function authProof(stream: TransportStream, secret: Buffer): Buffer {
  return createHmac("sha256", secret).update(stream.sessionBinding()).digest();
}

export function verifyAuthProof(stream: TransportStream, secret: Buffer, proof: Buffer): boolean {
  const expected = authProof(stream, secret);
  return proof.length === expected.length && timingSafeEqual(proof, expected);
}
