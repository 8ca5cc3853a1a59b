/**
 * What the pusher's main thread and its stream threads (pusher-thread.ts) tell each other. The
 * main thread keeps the control connection (the manifest walk) and posts each token the host
 * asks a data stream for to a thread, which dials, offers and serves that stream.
 */
import type { DataStreamSpec } from "../client/pool/data-streams.js";
import type { RecentChunksMemory } from "../serve/recent-chunks.js";

/** A thread's workerData. */
export interface PusherThreadData {
  /** SRC's share: its root, the thread's own descriptor of it, and the one file pushed (Share.only). */
  root: string;
  rootFd: number;
  only: string | undefined;
  /** The thread's own descriptor of the pusher's state folder, which the share never serves; none without one. */
  stateFolder: { fd: number; path: string } | undefined;
  /** How the thread dials the host: as the control connection's client, over its transport (never QUIC). */
  streams: DataStreamSpec;
  /** A push of one file: the only path served (SessionContext.servedPath). */
  servedPath: string | undefined;
  idleTimeoutMs: number;
  /** The recent-chunk memory the main thread's walk writes, and the partition this thread owns. */
  recentChunks: RecentChunksMemory;
  recentPartition: number;
  /** Bytes the thread's streams have sent, which it stores at `bytesSentSlot` (one slot per thread). */
  bytesSent: BigInt64Array;
  bytesSentSlot: number;
}

export type ToPusherThread = { op: "offer"; token: Uint8Array } | { op: "close" };

export type FromPusherThread =
  /** An offered stream has ended: served, or never dialed, offered or taken. */
  | { op: "ended"; served: boolean }
  /** UPLOAD_STREAM_WANTED on a data stream: the main thread places it as any other. */
  | { op: "wanted"; token: Uint8Array }
  /** Every stream has ended and the thread's descriptors are closed: it may be terminated. */
  | { op: "closed" };
