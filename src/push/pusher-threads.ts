/**
 * The pusher's stream threads: each dials, offers and serves the data streams it is given
 * (pusher-thread.ts), so that TLS and the file reads of chunk serving leave the main thread,
 * which keeps the control connection and its manifest walk (chunking, hashing). They start as
 * soon as the control connection is up, so that loading their code (a tenth of a second and
 * more) overlaps the upload's request and the walk's start instead of delaying the first stream,
 * as a pull's stream workers do; the main thread gives each stream the host asks for to the
 * thread serving the fewest.
 *
 * Where a thread cannot serve as the main thread would, there are none (pusherThreadCount):
 * without the native addon there is no descriptor of SRC to give a thread; QUIC streams stay in
 * the main thread, as a pull's do (client/pool/stream-threads.ts: a worker that used the QUIC
 * binding must never exit on Node 20), and these threads exit when the push ends.
 */
import { closeSync } from "node:fs";
import { availableParallelism } from "node:os";
import type { Worker } from "node:worker_threads";
import type { DataStreamFactory } from "../client/pool/data-streams.js";
import { startServingThread } from "../engine/serving-thread.js";
import { platformIo } from "../platform/io.js";
import { RecentChunks, type RecentChunksMemory } from "../serve/recent-chunks.js";
import type { Share } from "../serve/share.js";
import type { StateFolder } from "../store/state-folder.js";
import { RECENT_CHUNK_BYTES } from "./pusher-context.js";
import { MAX_OFFERED_STREAMS, type UploadStreams } from "./pusher-streams.js";
import type { FromPusherThread, PusherThreadData, ToPusherThread } from "./pusher-thread-protocol.js";

const WORKER_URL = new URL("./pusher-thread.js", import.meta.url);
/** How long a thread told to close may take before it is terminated. */
const CLOSE_TIMEOUT_MS = 5000;
/**
 * Serving a GiB kept one thread about as busy as the main thread's walk of it (docs/decisions.md,
 * "The pusher's stream threads"): more than two help only where the walk costs less.
 */
const MAX_THREADS = 2;
/**
 * A smaller push is served in the main thread: a thread takes 0.15-0.2 s to load its code, which
 * the host's pull waits for, about what the main thread spends serving 64 MiB (docs/decisions.md).
 */
const MIN_THREADED_BYTES = 64 * 1024 * 1024;

/**
 * How many threads serve the data streams of a push of `bytes`: `wanted`, by default one per
 * core beside the main thread's (at least one, at most MAX_THREADS) for a push of at least
 * MIN_THREADED_BYTES; none where a thread cannot serve.
 */
export function pusherThreadCount(
  streams: DataStreamFactory,
  bytes: number,
  wanted: number | undefined,
): number {
  const possible = platformIo.kind === "native" && streams.spec.transport !== "quic" && !streams.inMainThread;
  const perCore = Math.max(1, Math.min(MAX_THREADS, availableParallelism() - 1));
  return possible ? (wanted ?? (bytes < MIN_THREADED_BYTES ? 0 : perCore)) : 0;
}

/** What every thread serves and dials with; each gets its own descriptors and recent-chunk partition. */
export interface PusherThreadsSetup {
  share: Share;
  /** The pusher's state folder, never served; undefined where it has none. */
  stateFolder: StateFolder | undefined;
  /** TELEPORT_HOME, the state folder's path. */
  home: string;
  streams: DataStreamFactory;
  servedPath: string | undefined;
  idleTimeoutMs: number;
}

interface Thread {
  worker: Worker;
  /** Streams posted to it and not yet ended. */
  streams: number;
  /** Failed, or exited: no more streams are placed on it. */
  gone: boolean;
  exited: Promise<void>;
}

export class PusherThreads implements UploadStreams {
  /**
   * The recent-chunk memory: the main thread's walk writes partition 0 (the small files it reads
   * for the manifest), which the threads' streams serve from; each thread owns one more.
   */
  readonly recentChunks: RecentChunksMemory;
  readonly #setup: PusherThreadsSetup;
  readonly #threads: Thread[] = [];
  /** Each thread's bytes sent, stored by the thread at its index. */
  readonly #bytesSent: BigInt64Array;
  #served = 0;
  #closing: Promise<void> | undefined;

  private constructor(setup: PusherThreadsSetup, count: number) {
    this.#setup = setup;
    this.recentChunks = RecentChunks.allocate(RECENT_CHUNK_BYTES, count + 1);
    this.#bytesSent = new BigInt64Array(new SharedArrayBuffer(count * BigInt64Array.BYTES_PER_ELEMENT));
  }

  /** Starts `count` threads, which boot while the push goes on; they must be closed. */
  static start(setup: PusherThreadsSetup, count: number): PusherThreads {
    const threads = new PusherThreads(setup, count);
    for (let slot = 0; slot < count; slot++) threads.#spawn(slot);
    return threads;
  }

  get bytesSent(): number {
    let bytes = 0;
    for (let slot = 0; slot < this.#bytesSent.length; slot++)
      bytes += Number(Atomics.load(this.#bytesSent, slot));
    return bytes;
  }

  get served(): number {
    return this.#served;
  }

  offer(token: Buffer): void {
    if (this.#closing !== undefined) return;
    let open = 0;
    let fewest: Thread | undefined;
    for (const thread of this.#threads) {
      open += thread.streams;
      if (!thread.gone && (fewest === undefined || thread.streams < fewest.streams)) fewest = thread;
    }
    // With no thread left, the stream is not dialed: the host's pull goes on with the others.
    if (fewest === undefined || open >= MAX_OFFERED_STREAMS) return;
    fewest.streams++;
    // Its own bytes: a view into the frame's read buffer would be cloned with all of that buffer.
    this.#post(fewest, { op: "offer", token: Uint8Array.from(token) });
  }

  #spawn(slot: number): void {
    const descriptors = this.#descriptors();
    if (descriptors === undefined) return;
    const { share, streams, servedPath, idleTimeoutMs } = this.#setup;
    const data: PusherThreadData = {
      root: share.root,
      ...descriptors,
      only: share.only,
      streams: streams.spec,
      servedPath,
      idleTimeoutMs,
      recentChunks: this.recentChunks,
      recentPartition: slot + 1,
      bytesSent: this.#bytesSent,
      bytesSentSlot: slot,
    };
    const { worker, exited } = startServingThread(WORKER_URL, data);
    const thread: Thread = { worker, streams: 0, gone: false, exited };
    // A thread that failed took its streams with it; the host's pull replaces them.
    const gone = () => {
      thread.gone = true;
      thread.streams = 0;
    };
    worker.on("error", gone);
    void thread.exited.then(gone);
    worker.on("message", (message: FromPusherThread) => this.#onMessage(thread, message));
    this.#threads.push(thread);
  }

  /** A thread's own descriptors of SRC's root and of the state folder; undefined where one cannot be had. */
  #descriptors(): Pick<PusherThreadData, "rootFd" | "stateFolder"> | undefined {
    const { share, stateFolder, home } = this.#setup;
    let rootFd: number | undefined;
    try {
      rootFd = platformIo.duplicate(share.rootFd);
      const stateFolderFd = stateFolder && platformIo.duplicate(stateFolder.fd);
      if (rootFd === undefined) return undefined;
      return {
        rootFd,
        stateFolder: stateFolderFd === undefined ? undefined : { fd: stateFolderFd, path: home },
      };
    } catch {
      // Out of descriptors: this thread is not started, and the others (or the control connection) serve.
      if (rootFd !== undefined) closeSync(rootFd);
      return undefined;
    }
  }

  #onMessage(thread: Thread, message: FromPusherThread): void {
    switch (message.op) {
      case "ended":
        thread.streams = Math.max(0, thread.streams - 1);
        if (message.served) this.#served++;
        break;
      case "wanted":
        this.offer(Buffer.from(message.token));
        break;
      case "closed":
        void thread.worker.terminate();
        break;
    }
  }

  #post(thread: Thread, message: ToPusherThread): void {
    thread.worker.postMessage(message);
  }

  close(): Promise<void> {
    this.#closing ??= Promise.all(
      this.#threads.map(async (thread) => {
        this.#post(thread, { op: "close" });
        const late = setTimeout(() => void thread.worker.terminate(), CLOSE_TIMEOUT_MS);
        await thread.exited;
        clearTimeout(late);
      }),
    ).then(() => {});
    return this.#closing;
  }
}
