/**
 * What every session of a host shares (SessionContext), built the same way in the main thread
 * and in each of the host's threads.
 */
import { type Chunker, defaultChunker } from "../chunking/chunker.js";
import { CompressionThreads } from "../compression/compression-threads.js";
import { BufferPool } from "../engine/buffer-pool.js";
import { ByteBudget } from "../engine/byte-budget.js";
import { platformIo } from "../platform/io.js";
import type { HostFaults } from "../serve/faults.js";
import { FileStates } from "../serve/file-states.js";
import type { RecentChunks } from "../serve/recent-chunks.js";
import type { Share } from "../serve/share.js";
import type { ChunkIndex } from "../store/chunk-index.js";
import type { TransportKind } from "../transport/transport.js";
import { Feature } from "../wire/messages.js";
import type { Admission } from "./admission.js";
import type { RefusalDelays } from "./auth-limiter.js";
import { PlaintextClients } from "./plaintext-clients.js";
import type { SessionContext } from "./session.js";
import type { UploadReceiver } from "./upload-request.js";

export interface ContextParts {
  share: Share;
  secret: Buffer;
  /** The file-state cache of manifests; none where no manifest is walked (a pusher's stream threads). */
  index?: ChunkIndex | undefined;
  /** Filled in as the listeners start, before any session does. */
  transports: ReadonlySet<TransportKind>;
  authLimiter: RefusalDelays;
  admission: Admission;
  idleTimeoutMs: number;
  handshakeTimeoutMs: number;
  allowPlaintext: boolean;
  /** Compress for clients that ask; with `compressionThreads` threads (default: per core). */
  compression: boolean;
  compressionThreads?: number | undefined;
  sendBudgetBytes: number;
  /** Small files' bytes between a manifest and its GET_CHUNKS (this thread's partition). */
  recent: RecentChunks;
  chunker?: Chunker | undefined;
  faults?: HostFaults | undefined;
  onSessionError?: SessionContext["onSessionError"];
  onClientEvent?: SessionContext["onClientEvent"];
  uploadSecret?: Buffer | undefined;
  uploads?: UploadReceiver | undefined;
}

export function sessionContext(parts: ContextParts): SessionContext {
  const chunker = parts.chunker ?? defaultChunker();
  return {
    share: parts.share,
    secret: parts.secret,
    chunker,
    // Keeps what the send budget lets out: buffers are reused, not left for the GC to find.
    // Shared memory, so that compression threads work on the frames where they were read.
    pool: new BufferPool(parts.sendBudgetBytes, { shared: true }),
    compression: parts.compression ? new CompressionThreads(parts.compressionThreads) : undefined,
    sendBudget: new ByteBudget(parts.sendBudgetBytes),
    idleTimeoutMs: parts.idleTimeoutMs,
    faults: parts.faults,
    onSessionError: parts.onSessionError,
    onClientEvent: parts.onClientEvent,
    index: parts.index,
    fileStates: parts.index && new FileStates(parts.index, chunker.id),
    recent: parts.recent,
    transports: parts.transports,
    handshakeTimeoutMs: parts.handshakeTimeoutMs,
    authLimiter: parts.authLimiter,
    admission: parts.admission,
    plaintextClients: new PlaintextClients(),
    allowPlaintext: parts.allowPlaintext,
    uploadSecret: parts.uploadSecret,
    uploads: parts.uploads,
  };
}

/** The features a session of `context` grants, of those its client offers in HELLO. */
export function grantableFeatures(context: SessionContext): number {
  return (
    Feature.ENTRY_ERRORS |
    Feature.SKIPPED_ENTRIES |
    Feature.HARD_LINKS |
    Feature.HOST_BUSY |
    Feature.DELTA |
    Feature.FILTERS |
    Feature.WATCH |
    (platformIo.kind === "native" ? Feature.XATTRS : 0) |
    (context.compression === undefined ? 0 : Feature.COMPRESSION) |
    (context.transports.size > 1 ? Feature.BOTH_TRANSPORTS : 0) |
    (context.punch === undefined ? 0 : Feature.PUNCH) |
    (context.allowPlaintext ? Feature.PLAINTEXT | Feature.FRAME_MAC : 0) |
    // A pusher grants it to the host pulling from it: it dials data streams when asked.
    (context.uploads === undefined && context.onUploadStreamWanted === undefined ? 0 : Feature.UPLOAD) |
    (context.uploads === undefined ? 0 : Feature.ROUTED_STREAMS)
  );
}
