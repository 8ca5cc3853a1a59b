/**
 * What the host's main thread and its threads (host-thread.ts) tell each other. A thread serves
 * the TCP connections it accepts from its own descriptor of the listening socket; the main
 * thread keeps what must be one for the whole host (the refusal delays of wrong secrets, the
 * log's events) and sums what the threads report.
 */
import type { CompressionStats } from "../compression/compression-threads.js";
import type { ErrorCode } from "../errors.js";
import type { RecentChunksMemory } from "../serve/recent-chunks.js";
import type { TransportKind } from "../transport/transport.js";
import type { ClientEvent } from "./session.js";

/** A TeleportError as it crosses between threads. */
export interface ThreadError {
  code: ErrorCode;
  detail: string;
}

/** A ClientEvent as it crosses between threads (its error as a ThreadError). */
export type ThreadClientEvent =
  | Exclude<ClientEvent, { kind: "closed" }>
  | (Omit<Extract<ClientEvent, { kind: "closed" }>, "error"> & { error: ThreadError | undefined });

/** A thread's workerData. */
export interface HostThreadData {
  /** The share's root, and the thread's own descriptor of the folder the main thread opened. */
  root: string;
  rootFd: number;
  /** A share of one file: its name in the root (Share.only). */
  only: string | undefined;
  /** The thread's own descriptor of the host's state folder, which the share never serves. */
  stateFolderFd: number;
  /** The thread's own descriptor of the listening TCP socket; it closes it when it stops. */
  listenerFd: number;
  home: string;
  keyPem: string;
  certPem: string;
  secret: Uint8Array;
  transports: TransportKind[];
  idleTimeoutMs: number;
  handshakeTimeoutMs: number;
  authLockoutMs: number;
  /** The host's Admission: its limit, and its count in memory shared by every thread. */
  maxClients: number;
  admitted: SharedArrayBuffer;
  compression: boolean;
  congestion: string | undefined;
  /** This thread's share of the host's send budget. */
  sendBudgetBytes: number;
  /** The recent-chunk cache all threads share, and the partition this thread writes. */
  recentChunks: RecentChunksMemory;
  recentPartition: number;
}

/** How busy a thread is, as Host's getters sum it. */
export interface ThreadLoad {
  sessions: number;
  sendBytesInUse: number;
  compression: CompressionStats | undefined;
}

export type ToHostThread = { op: "refusalDelay"; id: number; delayMs: number } | { op: "close" };

export type FromHostThread =
  | { op: "listening" }
  | { op: "authFailed"; id: number; address: string }
  | { op: "event"; event: ThreadClientEvent }
  | { op: "sessionError"; remote: string; error: ThreadError }
  | { op: "notice"; message: string }
  | ({ op: "load" } & ThreadLoad)
  | { op: "closed" };
