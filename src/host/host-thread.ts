/**
 * A host thread (see host-threads.ts): serves the TCP connections it accepts on its own
 * descriptor of the host's listening socket, each with a HostSession, as the main thread would.
 * What must be one for the whole host goes through the main thread: the refusal delays of wrong
 * secrets, the log's events. It never loads the QUIC binding, so it may exit (stream-threads.ts).
 */
import { type MessagePort, parentPort, workerData } from "node:worker_threads";
import { type TeleportError, toTeleportError } from "../errors.js";
import { RecentChunks } from "../serve/recent-chunks.js";
import { Share } from "../serve/share.js";
import { ChunkIndex } from "../store/chunk-index.js";
import { StateFolder } from "../store/state-folder.js";
import { listenTls, tlsStream } from "../transport/tcp.js";
import { Admission } from "./admission.js";
import type { RefusalDelays } from "./auth-limiter.js";
import { sessionContext } from "./host-context.js";
import { type ClientEvent, HostSession } from "./session.js";
import { tuneSocketsFor } from "./socket-tuning.js";
import type {
  FromHostThread,
  HostThreadData,
  ThreadClientEvent,
  ThreadError,
  ThreadLoad,
  ToHostThread,
} from "./thread-protocol.js";

/** How often a thread reports its load, when it changed: what Host's getters may lag by. */
const LOAD_REPORT_MS = 50;

/** Asks the main thread's AuthLimiter, which sees every thread's wrong secrets. */
class MainThreadDelays implements RefusalDelays {
  readonly windowMs: number;
  readonly #port: MessagePort;
  readonly #waiting = new Map<number, (delayMs: number) => void>();
  #nextId = 1;

  constructor(port: MessagePort, windowMs: number) {
    this.#port = port;
    this.windowMs = windowMs;
  }

  failed(address: string): Promise<number> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#waiting.set(id, resolve);
      post(this.#port, { op: "authFailed", id, address });
    });
  }

  answered(id: number, delayMs: number): void {
    this.#waiting.get(id)?.(delayMs);
    this.#waiting.delete(id);
  }
}

function post(port: MessagePort, message: FromHostThread): void {
  port.postMessage(message);
}

function threadError(error: TeleportError): ThreadError {
  return { code: error.code, detail: error.detail };
}

function threadEvent(event: ClientEvent): ThreadClientEvent {
  if (event.kind !== "closed") return event;
  return { ...event, error: event.error && threadError(event.error) };
}

async function serve(port: MessagePort, data: HostThreadData): Promise<void> {
  const delays = new MainThreadDelays(port, data.authLockoutMs);
  const stateFolder = StateFolder.adopt(data.stateFolderFd, data.home);
  const context = sessionContext({
    share: Share.adopt(data.root, data.rootFd, data.only, { stateFolder }),
    secret: Buffer.from(data.secret),
    index: ChunkIndex.open(data.home),
    transports: new Set(data.transports),
    authLimiter: delays,
    admission: new Admission(data.maxClients, data.admitted),
    idleTimeoutMs: data.idleTimeoutMs,
    handshakeTimeoutMs: data.handshakeTimeoutMs,
    allowPlaintext: false,
    compression: data.compression,
    compressionThreads: 1,
    sendBudgetBytes: data.sendBudgetBytes,
    recent: new RecentChunks(data.recentChunks, data.recentPartition),
    onSessionError: (remote, error) => post(port, { op: "sessionError", remote, error: threadError(error) }),
    onClientEvent: (event) => post(port, { op: "event", event: threadEvent(event) }),
  });
  const sessions = new Set<HostSession>();
  const identity = { keyPem: data.keyPem, certPem: data.certPem };
  const onNotice = (message: string) => post(port, { op: "notice", message });
  const listener = await listenTls(
    identity,
    { fd: data.listenerFd },
    (socket) => {
      const session = new HostSession(tlsStream(socket, undefined), context);
      sessions.add(session);
      session.closed.then(() => sessions.delete(session));
    },
    { handshakeTimeoutMs: data.handshakeTimeoutMs, ...tuneSocketsFor(data.congestion, onNotice) },
  );
  let reported = "";
  const report = setInterval(() => {
    const load: ThreadLoad = {
      sessions: sessions.size,
      sendBytesInUse: context.sendBudget.usedBytes,
      compression: context.compression?.stats,
    };
    const key = `${load.sessions} ${load.sendBytesInUse} ${load.compression?.bytesIn}`;
    if (key === reported) return;
    reported = key;
    post(port, { op: "load", ...load });
  }, LOAD_REPORT_MS);
  port.on("message", (message: ToHostThread) => {
    if (message.op === "refusalDelay") delays.answered(message.id, message.delayMs);
    else
      void (async () => {
        const stopped = listener.close();
        await Promise.all([...sessions].map((session) => session.close()));
        await stopped;
        clearInterval(report);
        context.index?.close();
        context.share.close();
        stateFolder.close();
        await context.compression?.close();
        post(port, { op: "load", sessions: 0, sendBytesInUse: 0, compression: context.compression?.stats });
        post(port, { op: "closed" });
      })();
  });
  post(port, { op: "listening" });
}

if (parentPort === null) throw new Error("host-thread runs as a worker thread");
const port = parentPort;
serve(port, workerData as HostThreadData).catch((err: unknown) => {
  throw toTeleportError(err); // the worker's "error": the host reports it
});
