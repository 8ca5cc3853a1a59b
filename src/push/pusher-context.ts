/**
 * What the pusher's sessions serve SRC with (SessionContext), built the same way for its control
 * connection in the main thread and for the data streams in each of its stream threads
 * (pusher-thread.ts). Only the host the pusher dialed is served: it proves the write secret.
 */
import { Admission } from "../host/admission.js";
import { AuthLimiter } from "../host/auth-limiter.js";
import { sessionContext } from "../host/host-context.js";
import type { SessionContext } from "../host/session.js";
import type { RecentChunks } from "../serve/recent-chunks.js";
import type { Share } from "../serve/share.js";
import type { ChunkIndex } from "../store/chunk-index.js";
import { HANDSHAKE_TIMEOUT_MS, type TransportKind } from "../transport/transport.js";

/** Wrong secrets remembered per address: the peer is the host just dialed, so this only slows a wrong one. */
const AUTH_LOCKOUT_MS = 60_000;
/** Chunk bytes read and not yet sent, per thread that serves. */
export const SEND_BUDGET_BYTES = 32 * 1024 * 1024;
/** The small files kept between manifest and GET_CHUNKS. */
export const RECENT_CHUNK_BYTES = 16 * 1024 * 1024;

export interface PusherContextParts {
  share: Share;
  /** The write link's secret, which the host proves in each HELLO. */
  secret: Buffer;
  /** The pusher's chunk index, for the manifest; none in a stream thread, which walks none. */
  index: ChunkIndex | undefined;
  /** The transport the host was reached over (its data streams come over the same). */
  transport: TransportKind;
  idleTimeoutMs: number;
  /** This thread's partition of the recent-chunk memory (the main thread's walk writes partition 0). */
  recent: RecentChunks;
  /** A push of one file: the only path served (SessionContext.servedPath). */
  servedPath: string | undefined;
}

export function pusherContext(parts: PusherContextParts): SessionContext {
  const context = sessionContext({
    share: parts.share,
    secret: parts.secret,
    index: parts.index,
    transports: new Set([parts.transport]),
    authLimiter: new AuthLimiter(AUTH_LOCKOUT_MS),
    admission: new Admission(1),
    idleTimeoutMs: parts.idleTimeoutMs,
    handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
    allowPlaintext: false,
    compression: false,
    sendBudgetBytes: SEND_BUDGET_BYTES,
    recent: parts.recent,
  });
  context.servedPath = parts.servedPath;
  return context;
}
