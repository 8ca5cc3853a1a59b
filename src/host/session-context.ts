/**
 * What a HostSession works with (SessionContext, built by host-context.ts) and what it tells of
 * its client (ClientEvent).
 */
import type { Chunker } from "../chunking/chunker.js";
import type { CompressionThreads } from "../compression/compression-threads.js";
import type { BufferPool } from "../engine/buffer-pool.js";
import type { ByteBudget } from "../engine/byte-budget.js";
import type { TeleportError } from "../errors.js";
import type { HostPuncher } from "../reach/host-punch.js";
import type { HostFaults } from "../serve/faults.js";
import type { FileStates } from "../serve/file-states.js";
import type { RecentChunks } from "../serve/recent-chunks.js";
import type { Share } from "../serve/share.js";
import type { ChunkIndex } from "../store/chunk-index.js";
import type { TransportKind } from "../transport/transport.js";
import type { UploadResult } from "../wire/messages.js";
import type { Admission } from "./admission.js";
import type { RefusalDelays } from "./auth-limiter.js";
import type { PlaintextClients } from "./plaintext-clients.js";
import type { UploadReceiver } from "./upload-request.js";

export interface SessionContext {
  share: Share;
  secret: Buffer;
  chunker: Chunker;
  pool: BufferPool;
  idleTimeoutMs: number;
  faults: HostFaults | undefined;
  /**
   * Bytes of chunk data read and not yet written to a socket, shared by all connections in turn
   * (each also has its own share, CONNECTION_SEND_BYTES): the host's memory stays bounded
   * however many clients pull at once, and each gets its turn at the disk and the CPU.
   */
  sendBudget: ByteBudget;
  /** Compresses chunks for clients that ask (Feature.COMPRESSION); undefined: compression off. */
  compression: CompressionThreads | undefined;
  /** Bytes of small files just read for a manifest, shared by all connections. */
  recent: RecentChunks;
  /** Chunk lists of files already hashed (the file-state cache), shared by all connections. */
  index: ChunkIndex | undefined;
  /** The index as the files a manifest reads whole see it, its records batched. */
  fileStates: FileStates | undefined;
  /** The transports the host listens on (Feature.BOTH_TRANSPORTS when it is both). */
  transports: ReadonlySet<TransportKind>;
  /** Plaintext data streams are taken (`host --allow-no-encryption`): Feature.PLAINTEXT. */
  allowPlaintext: boolean;
  /** Time to send HELLO once TLS is up. */
  handshakeTimeoutMs: number;
  /** Connections served at once, over all of the host's threads. */
  admission: Admission;
  /** Wrong secrets per address, shared by all connections (and all of the host's threads). */
  authLimiter: RefusalDelays;
  /** Control connections that plaintext streams may name (Feature.FRAME_MAC). */
  plaintextClients: PlaintextClients;
  /** Told when a connection ends with an error (the CLI logs it). */
  onSessionError: ((remote: string, error: TeleportError) => void) | undefined;
  /** Told of authentication and of the end of each connection (`host --once`). */
  onClientEvent: ((event: ClientEvent) => void) | undefined;
  /** The share's write secret (`host --allow-upload`); undefined: the host takes no uploads. */
  uploadSecret?: Buffer | undefined;
  /** Takes the uploads of clients that proved the write secret (push/upload-receiver.ts). */
  uploads?: UploadReceiver | undefined;
  /** The pusher's side of a push of one file (push/pusher.ts): the only path it serves. */
  servedPath?: string | undefined;
  /** The pusher's side of an upload (push/pusher.ts): told how the host says it ended. */
  onUploadResult?: ((result: UploadResult) => void) | undefined;
  /** The pusher's side of an upload: the host wants a data stream that gives `token` back. */
  onUploadStreamWanted?: ((token: Buffer) => void) | undefined;
  /** Answers PUNCH from the host's QUIC socket (reach/host-punch.ts); unset where it cannot. */
  punch?: HostPuncher | undefined;
}

/** Where a connection comes from, as the host's log names it. */
export interface ClientPeer {
  address: string;
  port: number;
  /** HELLO's clientId (hex): a pull's data streams give their control connection's. */
  id: string | undefined;
}

/** The requests that name a path in the share: `ls`, a pull's manifest, `cat`, a push. */
export type PathRequest = "list" | "manifest" | "read" | "upload";

/**
 * A connection's life as `host --once` and the host's log follow it: proving the link's secret,
 * asking for a path, and ending (`idle`: with no request open, as a client that finished does).
 */
export type ClientEvent =
  | { kind: "authenticated"; peer: ClientPeer }
  | { kind: "request"; peer: ClientPeer; request: PathRequest; path: string }
  | {
      kind: "closed";
      peer: ClientPeer;
      authenticated: boolean;
      error: TeleportError | undefined;
      idle: boolean;
      bytesSent: number;
      /** What an upload took in over the pusher's connections (0 for a connection that was not one's). */
      bytesReceived: number;
    };
