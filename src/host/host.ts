/**
 * `teleport host`: shares one folder over TLS until closed. Each connection gets a HostSession;
 * the share link carries the address, the certificate fingerprint and the folder's secret.
 */

import type { Socket } from "node:net";
import { networkInterfaces } from "node:os";
import { type Chunker, defaultChunker } from "../chunking/chunker.js";
import { type CompressionStats, CompressionThreads } from "../compression/compression-threads.js";
import { BufferPool } from "../engine/buffer-pool.js";
import { ByteBudget } from "../engine/byte-budget.js";
import { DEFAULT_IDLE_TIMEOUT_MS } from "../engine/connection.js";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { platformIo } from "../platform/io.js";
import { ChunkIndex } from "../store/chunk-index.js";
import { loadOrCreateIdentity, shareSecret } from "../transport/identity.js";
import { formatLink, type ShareLink } from "../transport/link.js";
import { availableTransports, transportFor } from "../transport/registry.js";
import { HANDSHAKE_TIMEOUT_MS } from "../transport/tcp.js";
import {
  type Listener,
  type ListenOptions,
  TRANSPORT_KINDS,
  type TransportKind,
  type TransportStream,
} from "../transport/transport.js";
import { AuthLimiter } from "./auth-limiter.js";
import { DEFAULT_CONGESTION } from "./congestion.js";
import type { HostInternals } from "./faults.js";
import { PlaintextClients } from "./plaintext-clients.js";
import { RecentChunks } from "./recent-chunks.js";
import { type ClientEvent, HostSession } from "./session.js";
import { Share } from "./share.js";

export { DEFAULT_CONGESTION } from "./congestion.js";
export type { ClientEvent, ClientPeer, PathRequest } from "./session.js";

/**
 * Bytes of small files kept between a manifest and the GET_CHUNKS for them: a client asks for a
 * file's chunks at most its manifest window and its bytes in flight after listing it (measured:
 * docs/decisions.md, "Recent chunks").
 */
const RECENT_CHUNK_BYTES = 16 * 1024 * 1024;
/**
 * Chunk data read and queued for sending, over all connections (see SessionContext.sendBudget):
 * 4 connections' worth at full speed (CONNECTION_SEND_BYTES); more only holds heap
 * (docs/decisions.md, "The host's send budget").
 */
const SEND_BUDGET_BYTES = 32 * 1024 * 1024;
/** 5 guesses a minute per address: a 256-bit secret stays out of reach, a mistyped link recovers. */
const AUTH_LOCKOUT_MS = 60_000;
/**
 * Unsent bytes a connection's kernel buffer holds before the socket stops taking more
 * (TCP_NOTSENT_LOWAT): what is in flight is not limited, only what waits behind it, which the
 * kernel otherwise lets grow to tens of MB at no gain (docs/decisions.md, "TCP_NOTSENT_LOWAT").
 * Kept here instead, bytes stay cancellable, and the host's send budget sees them.
 */
const NOTSENT_LOWAT_BYTES = 1024 * 1024;

export interface HostOptions {
  /** The folder to share. */
  root: string;
  /** State folder holding the host identity and the chunk index (TELEPORT_HOME). */
  home: string;
  port?: number;
  /** Address to listen on; default all IPv4 interfaces. */
  bind?: string;
  /** Address written into the link; default the bind address, or this machine's first external IPv4. */
  advertise?: string;
  idleTimeoutMs?: number;
  /** How long a connection may take to complete TLS, and then to authenticate (default 10 s each). */
  handshakeTimeoutMs?: number;
  /** How long an address's wrong secrets are remembered, delaying its next refusals (default 60 s). */
  authLockoutMs?: number;
  chunker?: Chunker;
  /** Compress chunks for clients that ask (default true); `host --no-compress` turns it off. */
  compression?: boolean;
  /**
   * What to listen on: TLS over TCP and QUIC, on the same port number (TCP's and UDP's), so one
   * link reaches the host by either. Default both, QUIC where it is available (`host --no-quic`:
   * TCP only); a QUIC port that cannot be had is then a notice, not an error.
   */
  transports?: TransportKind[];
  /**
   * The TCP congestion control of the connections the host sends on (TCP_CONGESTION, with the
   * native addon): default DEFAULT_CONGESTION where the kernel offers it, `system` for the
   * kernel's default.
   */
  congestion?: string;
  /**
   * Takes plaintext data streams from clients that ask for them (`pull --no-encryption`): a
   * trusted network's bulk data then crosses it unencrypted, sent from the page cache (see
   * transport/plain.ts). Off by default; `host --allow-no-encryption`.
   */
  allowPlaintext?: boolean;
  /** Told of what the host could not do but works without (QUIC's port taken, say). */
  onNotice?: (message: string) => void;
  /** Told when a client connection ends with an error. */
  onSessionError?: (remote: string, error: TeleportError) => void;
  /** Told when a connection has proved the link's secret, and when it ends (`host --once`). */
  onClientEvent?: (event: ClientEvent) => void;
}

export class Host {
  readonly link: ShareLink;
  readonly share: Share;
  readonly #listeners: Listener[];
  readonly #sessions: Set<HostSession>;
  readonly #index: ChunkIndex;
  readonly #sendBudget: ByteBudget;
  readonly #compression: CompressionThreads | undefined;
  #closing: Promise<void> | undefined;

  private constructor(
    share: Share,
    listeners: Listener[],
    link: ShareLink,
    sessions: Set<HostSession>,
    index: ChunkIndex,
    sendBudget: ByteBudget,
    compression: CompressionThreads | undefined,
  ) {
    this.share = share;
    this.#sendBudget = sendBudget;
    this.#compression = compression;
    this.#index = index;
    this.#listeners = listeners;
    this.link = link;
    this.#sessions = sessions;
  }

  /** `internals`: for tests only (fault injection); not part of the library's API. */
  static async start(options: HostOptions, internals: HostInternals = {}): Promise<Host> {
    const share = await Share.open(options.root);
    const identity = await loadOrCreateIdentity(options.home);
    const secret = shareSecret(identity, share.root);
    const index = ChunkIndex.open(options.home);
    /** Filled in as the listeners start, before any session does. */
    const transports = new Set<TransportKind>();
    const context = {
      share,
      secret,
      chunker: options.chunker ?? defaultChunker(),
      // Keeps what the send budget lets out: buffers are reused, not left for the GC to find.
      // Shared memory, so that compression threads work on the frames where they were read.
      pool: new BufferPool(SEND_BUDGET_BYTES, { shared: true }),
      compression: options.compression === false ? undefined : new CompressionThreads(),
      sendBudget: new ByteBudget(SEND_BUDGET_BYTES),
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      faults: internals.faults,
      onSessionError: options.onSessionError,
      onClientEvent: options.onClientEvent,
      index,
      recent: new RecentChunks(RECENT_CHUNK_BYTES),
      transports,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
      authLimiter: new AuthLimiter(options.authLockoutMs ?? AUTH_LOCKOUT_MS),
      plaintextClients: new PlaintextClients(),
      allowPlaintext: options.allowPlaintext === true,
    };
    const bind = options.bind ?? "0.0.0.0";
    const sessions = new Set<HostSession>();
    const serve = (stream: TransportStream) => {
      const session = new HostSession(stream, context);
      sessions.add(session);
      session.closed.then(() => sessions.delete(session));
    };
    const listenOptions: ListenOptions = {
      handshakeTimeoutMs: context.handshakeTimeoutMs,
      allowPlaintext: context.allowPlaintext,
      ...tuneSocketsFor(options),
    };
    const wanted = options.transports ?? availableTransports();
    const listeners: Listener[] = [];
    try {
      let port = options.port ?? 0;
      for (const kind of TRANSPORT_KINDS.filter((candidate) => wanted.includes(candidate))) {
        // After the first, the port it got: the link names one port for all.
        const listener = await transportFor(kind)
          .listen(identity, { host: bind, port }, serve, listenOptions)
          .catch((err: unknown) => {
            if (options.transports !== undefined || kind === "tcp") throw err;
            options.onNotice?.(`not listening for QUIC (${toTeleportError(err).detail}); TCP only`);
            return undefined;
          });
        if (listener === undefined) continue;
        listeners.push(listener);
        transports.add(kind);
        port = listener.port;
      }
      if (listeners.length === 0) throw new TeleportError(ErrorCode.USAGE, "no transport to listen on");
    } catch (err) {
      await Promise.all(listeners.map((listener) => listener.close()));
      index.close();
      await context.compression?.close();
      throw err;
    }
    const first = listeners[0] as Listener;
    const advertised = options.advertise ?? advertisedAddress(first.host);
    const link = { host: advertised, port: first.port, fingerprint: identity.fingerprint, secret };
    return new Host(share, listeners, link, sessions, index, context.sendBudget, context.compression);
  }

  /** The transports the host listens on. */
  get transports(): TransportKind[] {
    return this.#listeners.map((listener) => listener.transport);
  }

  get url(): string {
    return formatLink(this.link);
  }

  get port(): number {
    return this.link.port;
  }

  get connectionCount(): number {
    return this.#sessions.size;
  }

  /** Bytes of chunk data read and not yet written to a socket, over all connections. */
  get sendBytesInUse(): number {
    return this.#sendBudget.usedBytes;
  }

  /** What the host has compressed for its clients; undefined when compression is off. */
  get compressionStats(): CompressionStats | undefined {
    return this.#compression?.stats;
  }

  /** Stops accepting, lets open connections finish their queued writes, then closes them. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const stopped = Promise.all(this.#listeners.map((listener) => listener.close()));
      await Promise.all([...this.#sessions].map((session) => session.close()));
      await stopped;
      this.#index.close();
      await this.#compression?.close();
    })();
    return this.#closing;
  }

  destroy(): void {
    for (const session of this.#sessions) session.destroy();
    for (const listener of this.#listeners) void listener.close();
    this.#index.close();
    void this.#compression?.close();
  }
}

function advertisedAddress(bound: string): string {
  if (bound !== "0.0.0.0" && bound !== "::") return bound;
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === "IPv4" && !address.internal) return address.address;
    }
  }
  return "127.0.0.1";
}

/**
 * Sets the congestion control on each accepted TCP connection. A choice the kernel does not
 * offer leaves the system's; that is said once, when it was the user's choice.
 */
function tuneSocketsFor(options: HostOptions): Pick<ListenOptions, "tuneSocket"> {
  const wanted = options.congestion ?? DEFAULT_CONGESTION;
  let told = options.congestion === undefined;
  return {
    tuneSocket: (socket: Socket) => {
      platformIo.setNotSentLowat(socket, NOTSENT_LOWAT_BYTES);
      if (wanted === "system") return;
      const inEffect = platformIo.setCongestion(socket, wanted);
      if (inEffect === wanted || told) return;
      told = true;
      options.onNotice?.(
        inEffect === undefined
          ? `cannot set TCP congestion control ${wanted} without the native addon; the system's is used`
          : `TCP congestion control ${wanted} is not available here; the system's (${inEffect}) is used`,
      );
    },
  };
}
