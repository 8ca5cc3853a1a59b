/**
 * What the TCP-based transports share (TLS in tcp.ts, plaintext in plain.ts): a socket set up
 * for frames, a dial's watch until its stream is ready, and a listening server.
 */
import type * as net from "node:net";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import type { DirectReads, ReadTarget } from "./direct-reads.js";
import type { ListenOptions, TransportStream } from "./transport.js";

/**
 * TCP keep-alive probes after this long without traffic: a NAT or firewall forgets an idle
 * connection in minutes, and a pull's data streams can idle while the manifest is walked.
 */
const KEEPALIVE_MS = 30_000;
/** Open connections a host accepts at once: a bound on its descriptors, whoever connects. */
const MAX_CONNECTIONS = 4096;

/**
 * What a TLS or plaintext stream over `socket` shares, the socket set up for frames: they go out
 * as they are written (requests and pings must not wait for Nagle's algorithm), and idle
 * connections are kept alive. A socket we connected reads through `reads` (direct-reads.ts).
 */
export function tcpStreamBase(
  socket: net.Socket,
  rttMs: number | undefined,
  reads?: DirectReads,
): Pick<TransportStream, "transport" | "stream" | "remoteAddress" | "remotePort" | "stats" | "steerReads"> {
  socket.setNoDelay(true);
  socket.setKeepAlive(true, KEEPALIVE_MS);
  return {
    transport: "tcp",
    stream: socket,
    ...(reads === undefined ? {} : { steerReads: (target: ReadTarget) => reads.steer(target) }),
    remoteAddress: socket.remoteAddress ?? "",
    remotePort: socket.remotePort ?? 0,
    stats: () => ({ rttMs, bytesSent: socket.bytesWritten, bytesReceived: socket.bytesRead }),
  };
}

/** A dial under way (see watchDial). */
export interface DialWatch {
  /** Destroys the socket and rejects the dial with `error`. */
  fail(error: TeleportError): void;
  /** Stops watching: the stream is handed over. */
  settle(): void;
}

/**
 * What every TCP dial does until its stream is ready: gives up with TIMEOUT when no `handshake`
 * is done within `timeoutMs`, with CANCELLED when `signal` aborts, and with the socket's own
 * error, destroying the socket each time.
 */
export function watchDial(
  socket: net.Socket,
  where: string,
  options: { handshake: string; timeoutMs: number; signal?: AbortSignal | undefined },
  reject: (error: TeleportError) => void,
): DialWatch {
  const { handshake, timeoutMs, signal } = options;
  const fail = (error: TeleportError) => {
    settle();
    socket.destroy();
    reject(error);
  };
  const timeout = () =>
    fail(
      new TeleportError(ErrorCode.TIMEOUT, `no ${handshake} handshake with ${where} within ${timeoutMs} ms`),
    );
  const timer = setTimeout(timeout, timeoutMs);
  const onAbort = () => fail(new TeleportError(ErrorCode.CANCELLED, "connect cancelled"));
  const onError = (err: Error) => fail(toTeleportError(err, `connecting to ${where}`));
  const settle = () => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    socket.off("error", onError);
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  socket.once("error", onError);
  return { fail, settle };
}

/**
 * Where a server listens: an address, or a listening socket's descriptor (the host's threads
 * each own one of the same socket's), which the server then closes with itself.
 */
export type ListenAddress = { host: string; port: number } | { fd: number };

/**
 * Starts `server` listening on `bind`, its sockets tuned as `options` asks, and resolves with
 * where it listens and how to close it.
 */
export function listenOn(
  server: net.Server,
  bind: ListenAddress,
  options: ListenOptions,
): Promise<{ host: string; port: number; close(): Promise<void> }> {
  server.maxConnections = MAX_CONNECTIONS;
  const { tuneSocket } = options;
  if (tuneSocket !== undefined) server.on("connection", (socket: net.Socket) => tuneSocket(socket));
  const where = "fd" in bind ? `descriptor ${bind.fd}` : `${bind.host}:${bind.port}`;
  return new Promise((resolve, reject) => {
    server.once("error", (err) => reject(toTeleportError(err, `listening on ${where}`)));
    server.listen("fd" in bind ? { fd: bind.fd } : { port: bind.port, host: bind.host }, () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        reject(new TeleportError(ErrorCode.INTERNAL, "listener has no TCP address"));
        return;
      }
      resolve({
        host: address.address,
        port: address.port,
        close: () => new Promise<void>((resolve) => server.close(() => resolve())),
      });
    });
  });
}
