/**
 * The host's threads: each serves TCP connections from its own descriptor of the one listening
 * socket (the kernel hands each new connection to a thread waiting in accept, so an idle thread
 * takes the next), TLS and all, so that the host uses every core. The main thread keeps QUIC:
 * a worker that loaded the QUIC binding must never exit on Node 20 (see
 * client/pool/stream-threads.ts), and these exit when the host closes.
 */
import { availableParallelism } from "node:os";
import type { Worker } from "node:worker_threads";
import type { CompressionStats } from "../compression/compression-threads.js";
import { startServingThread } from "../engine/serving-thread.js";
import { ErrorCode, TeleportError } from "../errors.js";
import type { AuthLimiter } from "./auth-limiter.js";
import type { ClientEvent } from "./session.js";
import type {
  FromHostThread,
  HostThreadData,
  ThreadClientEvent,
  ThreadLoad,
  ToHostThread,
} from "./thread-protocol.js";

const WORKER_URL = new URL("./host-thread.js", import.meta.url);

/** One thread per core: the main thread is left QUIC and the log, little work. */
export function defaultHostThreads(): number {
  return availableParallelism();
}

/** What the threads tell the host: each thread's events, as the host's own sessions' would be. */
export interface HostThreadEvents {
  authLimiter: AuthLimiter;
  onSessionError: ((remote: string, error: TeleportError) => void) | undefined;
  onClientEvent: ((event: ClientEvent) => void) | undefined;
  onNotice: ((message: string) => void) | undefined;
}

interface Thread {
  worker: Worker;
  load: ThreadLoad;
  exited: Promise<void>;
}

export class HostThreads {
  readonly #threads: Thread[];
  readonly #events: HostThreadEvents;
  readonly #notices = new Set<string>();
  #closing: Promise<void> | undefined;

  private constructor(events: HostThreadEvents) {
    this.#events = events;
    this.#threads = [];
  }

  /**
   * Starts one thread per entry of `threadData` (each with its own descriptors, which it owns
   * from here) and resolves once every one listens.
   */
  static async start(threadData: HostThreadData[], events: HostThreadEvents): Promise<HostThreads> {
    const threads = new HostThreads(events);
    try {
      await Promise.all(threadData.map((data) => threads.#spawn(data)));
    } catch (err) {
      threads.destroy();
      throw err;
    }
    return threads;
  }

  #spawn(data: HostThreadData): Promise<void> {
    const { worker, exited } = startServingThread(WORKER_URL, data);
    const thread: Thread = {
      worker,
      load: { sessions: 0, sendBytesInUse: 0, compression: undefined },
      exited,
    };
    this.#threads.push(thread);
    return new Promise((resolve, reject) => {
      worker.once("error", reject);
      worker.once("exit", () => reject(new TeleportError(ErrorCode.INTERNAL, "host thread exited")));
      worker.on("message", (message: FromHostThread) => {
        if (message.op === "listening") {
          worker.off("error", reject);
          worker.on("error", (err) => this.#notice(`a host thread failed: ${err.message}`));
          resolve();
        } else this.#onMessage(thread, message);
      });
    });
  }

  #onMessage(thread: Thread, message: FromHostThread): void {
    switch (message.op) {
      case "authFailed":
        this.#post(thread, {
          op: "refusalDelay",
          id: message.id,
          delayMs: this.#events.authLimiter.failed(message.address),
        });
        break;
      case "event":
        this.#events.onClientEvent?.(clientEvent(message.event));
        break;
      case "sessionError":
        this.#events.onSessionError?.(
          message.remote,
          new TeleportError(message.error.code, message.error.detail),
        );
        break;
      case "notice":
        this.#notice(message.message);
        break;
      case "load":
        thread.load = message;
        break;
      case "closed":
        void thread.worker.terminate();
        break;
    }
  }

  /** Each notice once, however many threads have it. */
  #notice(message: string): void {
    if (this.#notices.has(message)) return;
    this.#notices.add(message);
    this.#events.onNotice?.(message);
  }

  #post(thread: Thread, message: ToHostThread): void {
    thread.worker.postMessage(message);
  }

  get sessions(): number {
    return this.#threads.reduce((sum, thread) => sum + thread.load.sessions, 0);
  }

  get sendBytesInUse(): number {
    return this.#threads.reduce((sum, thread) => sum + thread.load.sendBytesInUse, 0);
  }

  /** The threads' compression, added to `own` (the main thread's). */
  compressionStats(own: CompressionStats): CompressionStats {
    const total = { ...own, bytesInByLevel: new Map(own.bytesInByLevel) };
    for (const { load } of this.#threads) {
      if (load.compression === undefined) continue;
      total.chunks += load.compression.chunks;
      total.bytesIn += load.compression.bytesIn;
      total.bytesOut += load.compression.bytesOut;
      for (const [level, bytes] of load.compression.bytesInByLevel)
        total.bytesInByLevel.set(level, (total.bytesInByLevel.get(level) ?? 0) + bytes);
    }
    return total;
  }

  /** Stops accepting; each thread lets its connections finish their queued writes, then exits. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const thread of this.#threads) this.#post(thread, { op: "close" });
      await Promise.all(this.#threads.map((thread) => thread.exited));
    })();
    return this.#closing;
  }

  destroy(): void {
    for (const thread of this.#threads) void thread.worker.terminate();
  }
}

function clientEvent(event: ThreadClientEvent): ClientEvent {
  if (event.kind !== "closed") return event;
  const { error } = event;
  return { ...event, error: error && new TeleportError(error.code, error.detail) };
}
