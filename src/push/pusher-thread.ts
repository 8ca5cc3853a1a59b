/**
 * A pusher stream thread (see pusher-threads.ts): for each token the main thread posts, it dials
 * the host, offers the stream and serves SRC on it once handed over (PusherStreams, as the main
 * thread does without threads), with its own descriptors of SRC and its own session context, so
 * the TLS and the file reads of chunk serving run beside the main thread's walk. It never dials
 * QUIC (pusher-threads.ts keeps a QUIC push in the main thread), so it may exit.
 */
import { type MessagePort, parentPort, workerData } from "node:worker_threads";
import { DataStreamFactory } from "../client/pool/data-streams.js";
import { toTeleportError } from "../errors.js";
import { HostSession } from "../host/session.js";
import { RecentChunks } from "../serve/recent-chunks.js";
import { Share } from "../serve/share.js";
import { StateFolder } from "../store/state-folder.js";
import { pusherContext } from "./pusher-context.js";
import { PusherStreams } from "./pusher-streams.js";
import type { FromPusherThread, PusherThreadData, ToPusherThread } from "./pusher-thread-protocol.js";

/** How often the thread stores its streams' bytes sent: what the push's progress may lag by. */
const BYTES_REPORT_MS = 100;

function post(port: MessagePort, message: FromPusherThread): void {
  port.postMessage(message);
}

function serve(port: MessagePort, data: PusherThreadData): void {
  const stateFolder = data.stateFolder && StateFolder.adopt(data.stateFolder.fd, data.stateFolder.path);
  const factory = DataStreamFactory.revive(data.streams);
  const context = pusherContext({
    share: Share.adopt(data.root, data.rootFd, data.only, { stateFolder }),
    secret: factory.spec.link.secret,
    index: undefined,
    transport: factory.spec.transport,
    idleTimeoutMs: data.idleTimeoutMs,
    recent: new RecentChunks(data.recentChunks, data.recentPartition),
    servedPath: data.servedPath,
  });
  // Its own bytes: a view into the frame's read buffer would be cloned with all of that buffer.
  context.onUploadStreamWanted = (token) => post(port, { op: "wanted", token: Uint8Array.from(token) });
  const reportBytes = () => Atomics.store(data.bytesSent, data.bytesSentSlot, BigInt(streams.bytesSent));
  const streams = new PusherStreams(
    factory,
    (stream) => new HostSession(stream, context),
    (served) => {
      reportBytes();
      post(port, { op: "ended", served });
    },
  );
  const reporting = setInterval(reportBytes, BYTES_REPORT_MS);
  port.on("message", (message: ToPusherThread) => {
    if (message.op === "offer") streams.offer(Buffer.from(message.token));
    else
      void streams.close().then(() => {
        clearInterval(reporting);
        reportBytes();
        context.share.close();
        stateFolder?.close();
        post(port, { op: "closed" });
      });
  });
}

if (parentPort === null) throw new Error("pusher-thread runs as a worker thread");
try {
  serve(parentPort, workerData as PusherThreadData);
} catch (err) {
  throw toTeleportError(err); // the worker's "error": the pusher places no more streams on it
}
