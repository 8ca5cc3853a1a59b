/**
 * `teleport host`: shares one folder over TLS until closed. Each connection gets a HostSession;
 * the share link carries the address, the certificate fingerprint and the folder's secret.
 */

import { createServer, type Server } from "node:net";
import { networkInterfaces } from "node:os";
import type { Chunker } from "../chunking/chunker.js";
import type { CompressionStats } from "../compression/compression-threads.js";
import { DEFAULT_IDLE_TIMEOUT_MS } from "../engine/connection.js";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { platformIo } from "../platform/io.js";
import { HostPuncher } from "../reach/host-punch.js";
import { type MappedPort, mapHostPortTelling } from "../reach/port-mapping.js";
import { isPartName } from "../receive/part-names.js";
import type { RelayAddress } from "../relay/relay-protocol.js";
import type { HostInternals } from "../serve/faults.js";
import { RecentChunks, type RecentChunksMemory } from "../serve/recent-chunks.js";
import { Share } from "../serve/share.js";
import { ChunkIndex } from "../store/chunk-index.js";
import { StateFolder } from "../store/state-folder.js";
import { type HostIdentity, loadOrCreateIdentity, shareSecret, uploadSecret } from "../transport/identity.js";
import { formatLink, type ShareLink } from "../transport/link.js";
import { availableTransports, transportFor } from "../transport/registry.js";
import { HANDSHAKE_TIMEOUT_MS } from "../transport/tcp.js";
import { listenOn } from "../transport/tcp-socket.js";
import {
  type Listener,
  type ListenOptions,
  TRANSPORT_KINDS,
  type TransportKind,
  type TransportStream,
} from "../transport/transport.js";
import { Admission } from "./admission.js";
import { AuthLimiter } from "./auth-limiter.js";
import { sessionContext } from "./host-context.js";
import { defaultHostThreads, HostThreads } from "./host-threads.js";
import { type ClientEvent, HostSession, type SessionContext } from "./session.js";
import { tuneSocketsFor } from "./socket-tuning.js";
import type { HostThreadData } from "./thread-protocol.js";
import type { UploadReceiver } from "./upload-request.js";

export { DEFAULT_CONGESTION } from "./congestion.js";
export type { ClientEvent, ClientPeer, PathRequest } from "./session.js";
export type { AcceptedUpload, UploadReceiver } from "./upload-request.js";

/** Makes the receiver of a host's uploads, once its share and index are open (push/upload-receiver.ts). */
export type UploadReceiverFactory = (host: {
  share: Share;
  index: ChunkIndex;
  home: string;
  /** Where no upload may write (store/state-folder.ts). */
  stateFolder: StateFolder;
  /** The host's TLS identity: threads that take an upload's routed streams present it. */
  identity: Pick<HostIdentity, "keyPem" | "certPem">;
}) => UploadReceiver;

/**
 * Bytes of files up to WHOLE_READ_FILE_BYTES kept between a manifest and the GET_CHUNKS for them,
 * split between the threads that walk: a client asks for a file's chunks at most its manifest
 * window and its bytes in flight after listing it (measured: docs/decisions.md, "Recent chunks",
 * and "Files up to 512 KiB read whole into the ring").
 */
const RECENT_CHUNK_BYTES = 32 * 1024 * 1024;
/**
 * Chunk data read and queued for sending, over all connections of a thread (see
 * SessionContext.sendBudget): 4 connections' worth at full speed (CONNECTION_SEND_BYTES); more
 * only holds heap (docs/decisions.md, "The host's send budget").
 */
const SEND_BUDGET_BYTES = 32 * 1024 * 1024;
/**
 * Clients served at once, over all threads, before those that can wait are told to retry later:
 * with their 4-8 data streams each, well within a thread's MAX_CONNECTIONS; far past it, each
 * connection's turn at a core comes too late for its peer's timeouts.
 */
export const DEFAULT_MAX_CLIENTS = 256;
/** 5 guesses a minute per address: a 256-bit secret stays out of reach, a mistyped link recovers. */
const AUTH_LOCKOUT_MS = 60_000;

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
  /**
   * Relays to be reachable through (`host --relay`, transport/relay.ts): the host registers with
   * each and serves what it splices in the main thread; the link names them.
   */
  relays?: RelayAddress[];
  /** Asks the router to forward the port (NAT-PMP, UPnP), and names its public address in the link. */
  mapPort?: boolean;
  /**
   * Takes uploads from clients with the write link (`host --allow-upload`, Host.writeLink),
   * by the receiver this makes. Off by default: the host is read-only.
   */
  uploads?: UploadReceiverFactory;
  /** Told when a client connection ends with an error. */
  onSessionError?: (remote: string, error: TeleportError) => void;
  /** Told when a connection has proved the link's secret, and when it ends (`host --once`). */
  onClientEvent?: (event: ClientEvent) => void;
  /** The link's secret, in place of the folder's own: `teleport send` hosts under a fresh one. */
  secret?: Buffer;
  /**
   * Threads serving TCP connections, TLS and all (default: one per core); 0 serves every
   * connection in the calling thread. See servingThreads for when the calling thread serves
   * them anyway.
   */
  threads?: number;
  /**
   * Clients served at once (default DEFAULT_MAX_CLIENTS): connections that have asked for a
   * path (a pull, `ls`, `cat`), their data streams not counted. Past it, clients that can wait
   * are refused with TELEPORT_ERR_HOST_BUSY and a time to retry in, which their pulls honour.
   */
  maxClients?: number;
}

/** What a Host holds once started. */
interface HostParts {
  share: Share;
  stateFolder: StateFolder;
  listeners: Listener[];
  link: ShareLink;
  writeLink: ShareLink | undefined;
  sessions: Set<HostSession>;
  context: SessionContext;
  threads: HostThreads | undefined;
  mapped?: MappedPort | undefined;
}

export class Host {
  readonly link: ShareLink;
  /** The link that may also upload (`host --allow-upload`); undefined on a read-only host. */
  readonly writeLink: ShareLink | undefined;
  readonly share: Share;
  readonly #stateFolder: StateFolder;
  readonly #listeners: Listener[];
  readonly #sessions: Set<HostSession>;
  readonly #context: SessionContext;
  readonly #threads: HostThreads | undefined;
  readonly #mapped: MappedPort | undefined;
  #closing: Promise<void> | undefined;

  private constructor(parts: HostParts) {
    this.share = parts.share;
    this.#stateFolder = parts.stateFolder;
    this.link = parts.link;
    this.writeLink = parts.writeLink;
    this.#listeners = parts.listeners;
    this.#sessions = parts.sessions;
    this.#context = parts.context;
    this.#threads = parts.threads;
    this.#mapped = parts.mapped;
  }

  /** `internals`: for tests only (fault injection); not part of the library's API. */
  static async start(options: HostOptions, internals: HostInternals = {}): Promise<Host> {
    const identity = await loadOrCreateIdentity(options.home);
    // The host's key and secret are never served, nor written by an upload (state-folder.ts).
    const stateFolder = StateFolder.open(options.home);
    let share: Share;
    try {
      // Uploads under way are part files in the share: listed to nobody, indexed as nothing.
      share = await Share.open(options.root, {
        stateFolder,
        ...(options.uploads === undefined ? {} : { leaveOut: isPartName }),
      });
    } catch (err) {
      stateFolder.close();
      throw err;
    }
    const secret = options.secret ?? shareSecret(identity, share.source);
    const index = ChunkIndex.open(options.home);
    const uploads = options.uploads?.({ share, index, home: options.home, stateFolder, identity });
    const writeSecret = uploads && uploadSecret(identity, share.root);
    /** Filled in as the listeners start, before any session does. */
    const transports = new Set<TransportKind>();
    const authLimiter = new AuthLimiter(options.authLockoutMs ?? AUTH_LOCKOUT_MS);
    const admission = new Admission(options.maxClients ?? DEFAULT_MAX_CLIENTS);
    const threadCount = servingThreads(options, internals);
    // A partition per thread that walks, the main thread's first; the threads share the ring's bytes.
    const recentChunks = RecentChunks.allocate(
      RECENT_CHUNK_BYTES / Math.max(1, threadCount),
      threadCount + 1,
    );
    const context = sessionContext({
      share,
      secret,
      index,
      transports,
      authLimiter,
      admission,
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
      allowPlaintext: options.allowPlaintext === true,
      compression: options.compression !== false,
      sendBudgetBytes: SEND_BUDGET_BYTES,
      recent: new RecentChunks(recentChunks, 0),
      chunker: options.chunker,
      faults: internals.faults,
      onSessionError: options.onSessionError,
      onClientEvent: options.onClientEvent,
      uploadSecret: writeSecret,
      uploads,
    });
    const sessions = new Set<HostSession>();
    const serve = (stream: TransportStream) => {
      const session = new HostSession(stream, context);
      sessions.add(session);
      session.closed.then(() => sessions.delete(session));
    };
    const listenOptions: ListenOptions = {
      handshakeTimeoutMs: context.handshakeTimeoutMs,
      allowPlaintext: context.allowPlaintext,
      ...tuneSocketsFor(options.congestion, options.onNotice),
      // An upload's data stream, told by its route, goes to the thread of the pull that wants it.
      ...(uploads === undefined
        ? {}
        : { routeStream: (route, socket) => uploads.routeStream(route, socket) }),
    };
    const listeners: Listener[] = [];
    let threads: HostThreads | undefined;
    try {
      const reserved = await listenOnEvery(options, threadCount, listeners, (kind, bind) =>
        transportFor(kind).listen(identity, bind, serve, listenOptions),
      );
      for (const listener of listeners) transports.add(listener.transport);
      context.punch = HostPuncher.where(listeners.find((listener) => listener.transport === "quic")?.port);
      for (const relay of options.relays ?? [])
        listeners.push(
          await transportFor("relay").listen(identity, relay, serve, {
            ...listenOptions,
            onNotice: options.onNotice,
          }),
        );
      if (reserved !== undefined) {
        const data = threadData(options, identity, context, reserved.server, recentChunks, stateFolder);
        threads = await HostThreads.start(data, { authLimiter, ...ownerHooks(options) });
        // The threads' descriptors of the socket hold it open; closing the TCP listener stops them.
        await reserved.close();
        const started = threads;
        reserved.close = () => started.close();
      }
    } catch (err) {
      await Promise.all(listeners.map((listener) => listener.close()));
      uploads?.close();
      index.close();
      share.close();
      stateFolder.close();
      await context.compression?.close();
      throw err;
    }
    const first = listeners[0] as Listener;
    const advertised = options.advertise ?? advertisedAddress(first.host);
    const relays = options.relays ?? [];
    const mapped =
      options.mapPort === true ? await mapHostPortTelling(first.port, options.onNotice) : undefined;
    const link = {
      host: mapped?.host ?? advertised,
      port: mapped?.port ?? first.port,
      fingerprint: identity.fingerprint,
      secret,
      ...(relays.length > 0 ? { relays } : {}),
    };
    const writeLink = writeSecret && { ...link, secret: writeSecret, write: true };
    return new Host({ share, stateFolder, listeners, link, writeLink, sessions, context, threads, mapped });
  }

  /** The transports the host listens on. */
  get transports(): TransportKind[] {
    return this.#listeners.map((listener) => listener.transport);
  }

  get url(): string {
    return formatLink(this.link);
  }

  /** The write link as text; undefined on a read-only host. */
  get writeUrl(): string | undefined {
    return this.writeLink && formatLink(this.writeLink);
  }

  get port(): number {
    return this.link.port;
  }

  /** Open connections; a thread's are counted as it last reported them. */
  get connectionCount(): number {
    return this.#sessions.size + (this.#threads?.sessions ?? 0);
  }

  /** Bytes of chunk data read and not yet written to a socket, over all connections. */
  get sendBytesInUse(): number {
    return this.#context.sendBudget.usedBytes + (this.#threads?.sendBytesInUse ?? 0);
  }

  /** What the host has compressed for its clients; undefined when compression is off. */
  get compressionStats(): CompressionStats | undefined {
    const own = this.#context.compression?.stats;
    return own === undefined || this.#threads === undefined ? own : this.#threads.compressionStats(own);
  }

  /** Stops accepting, lets open connections finish their queued writes, then closes them. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const stopped = Promise.all(this.#listeners.map((listener) => listener.close()));
      await Promise.all([...this.#sessions].map((session) => session.close()));
      await stopped;
      this.#context.uploads?.close();
      this.#context.index?.close();
      this.#context.share.close();
      this.#stateFolder.close();
      await this.#context.compression?.close();
      await this.#mapped?.release();
    })();
    return this.#closing;
  }

  /** Drops every connection at once and lets everything go; a later close() does nothing more. */
  destroy(): void {
    this.#closing ??= this.#mapped?.release() ?? Promise.resolve();
    for (const session of this.#sessions) session.destroy();
    this.#threads?.destroy();
    for (const listener of this.#listeners) void listener.close();
    this.#context.uploads?.close();
    this.#context.index?.close();
    this.#context.share.close();
    this.#stateFolder.close();
    void this.#context.compression?.close();
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
 * Listens on every transport wanted, into `listeners`: TCP's port first, the others then on the
 * same number (the link names one port for all), TCP reserved for the threads when there are
 * any. A QUIC port that cannot be had is a notice, unless QUIC was asked for.
 */
async function listenOnEvery(
  options: HostOptions,
  threadCount: number,
  listeners: Listener[],
  listen: (kind: TransportKind, bind: { host: string; port: number }) => Promise<Listener>,
): Promise<ReservedListener | undefined> {
  let port = options.port ?? 0;
  let reserved: ReservedListener | undefined;
  const host = options.bind ?? "0.0.0.0";
  const wanted = options.transports ?? availableTransports();
  for (const kind of TRANSPORT_KINDS.filter((candidate) => wanted.includes(candidate))) {
    if (kind === "tcp" && threadCount > 0) reserved = await listenForThreads({ host, port });
    const listener =
      kind === "tcp" && reserved !== undefined
        ? reserved
        : await listen(kind, { host, port }).catch((err: unknown) => {
            if (options.transports !== undefined || kind === "tcp") throw err;
            options.onNotice?.(`not listening for QUIC (${toTeleportError(err).detail}); TCP only`);
            return undefined;
          });
    if (listener === undefined) continue;
    listeners.push(listener);
    port = listener.port;
  }
  if (listeners.length === 0) throw new TeleportError(ErrorCode.USAGE, "no transport to listen on");
  return reserved;
}

/** What the host's threads tell the host's owner. */
function ownerHooks({ onSessionError, onClientEvent, onNotice }: HostOptions) {
  return { onSessionError, onClientEvent, onNotice };
}

/**
 * How many threads serve TCP connections: `options.threads`, or none where a thread could not
 * serve as the calling one would. Without the native addon there is no descriptor to give a
 * thread; test faults, a chunker and an upload receiver are objects with functions, which cannot
 * cross to a thread; and a
 * plaintext stream must find its control connection's key, which lives in the thread that
 * serves it (`--allow-no-encryption` sends its bulk data from sender threads anyway).
 */
function servingThreads(options: HostOptions, internals: HostInternals): number {
  const wanted = options.threads ?? defaultHostThreads();
  const possible =
    platformIo.kind === "native" &&
    internals.faults === undefined &&
    options.chunker === undefined &&
    options.uploads === undefined &&
    options.allowPlaintext !== true;
  return possible ? wanted : 0;
}

/** A listening TCP socket the host's threads will accept on: reserved here, served by them. */
type ReservedListener = Listener & { server: Server };

async function listenForThreads(bind: { host: string; port: number }): Promise<ReservedListener> {
  // A connection accepted before the threads listen (a client that knew the port) is dropped:
  // the client's dial retries.
  const server = createServer((socket) => socket.destroy());
  const { host, port, close } = await listenOn(server, bind, {});
  return { transport: "tcp", host, port, close, server };
}

/** Each thread's workerData, with its own descriptors of the listening socket and the share. */
function threadData(
  options: HostOptions,
  identity: HostIdentity,
  context: SessionContext,
  server: Server,
  recentChunks: RecentChunksMemory,
  stateFolder: StateFolder,
): HostThreadData[] {
  const count = recentChunks.partitions - 1;
  return Array.from({ length: count }, (_, thread) => ({
    root: context.share.root,
    rootFd: duplicate(context.share.rootFd),
    only: context.share.only,
    stateFolderFd: duplicate(stateFolder.fd),
    listenerFd: duplicate(server),
    home: options.home,
    keyPem: identity.keyPem,
    certPem: identity.certPem,
    secret: context.secret,
    transports: [...context.transports],
    idleTimeoutMs: context.idleTimeoutMs,
    handshakeTimeoutMs: context.handshakeTimeoutMs,
    authLockoutMs: options.authLockoutMs ?? AUTH_LOCKOUT_MS,
    maxClients: context.admission.limit,
    admitted: context.admission.shared,
    compression: context.compression !== undefined,
    congestion: options.congestion,
    sendBudgetBytes: Math.ceil(SEND_BUDGET_BYTES / count),
    recentChunks,
    recentPartition: thread + 1,
  }));
}

function duplicate(of: number | Server): number {
  const fd = platformIo.duplicate(of);
  if (fd === undefined) throw new TeleportError(ErrorCode.INTERNAL, "no descriptor for a host thread");
  return fd;
}
