/**
 * The quinn (Rust) QUIC binding that `@chainsafe/libp2p-quic` ships per platform
 * (`@chainsafe/libp2p-quic-linux-x64-gnu` 2.1.4, an optional dependency), used directly, without
 * libp2p: its typings (it ships none), its loading, and the per-thread state it needs handled
 * with care (the dialling endpoint, the open connections, the event-loop hold). quic.ts builds
 * the transport on it.
 */
import { createRequire } from "node:module";
import { ErrorCode, TeleportError } from "../errors.js";
import { nativeUdp } from "../platform/native.js";
import type { Ed25519Key } from "./quic-identity.js";
import { HANDSHAKE_TIMEOUT_MS } from "./transport.js";

/** The parts of the quinn binding teleport uses. */
interface Quinn {
  QuinnConfig: new (options: QuinnOptions) => unknown;
  Server: new (config: unknown, ip: string, port: number) => QuinnServer;
  Client: new (config: unknown, family: 0 | 1) => QuinnClient;
}
interface QuinnOptions {
  privateKeyProto: Uint8Array;
  handshakeTimeout: number;
  maxIdleTimeout: number;
  keepAliveInterval: number;
  maxConcurrentStreamLimit: number;
  maxStreamData: number;
  maxConnectionData: number;
  receiveBufferSize: number;
  sendBufferSize: number;
  shutdownTimeout: number;
}
export interface QuinnServer {
  port(): number;
  inboundConnection(): Promise<QuinnConnection>;
  abort(): Promise<void>;
}
interface QuinnClient {
  outboundConnection(ip: string, port: number): Promise<QuinnConnection>;
  abort(): void;
}
export interface QuinnConnection {
  outboundStream(): Promise<QuinnStream>;
  inboundStream(): Promise<QuinnStream>;
  /** "/ip4/ADDRESS/udp/PORT/quic-v1/p2p/PEER-ID" */
  remoteMultiaddr(): string;
  closed(): Promise<void>;
  abort(): void;
  rtt(): number;
}
export interface QuinnStream {
  /** Resolves once the bytes are taken (flow control permitting); one write at a time. */
  write(data: Uint8Array): Promise<void>;
  /** At most `maxLength` bytes, null at the end; one read at a time. */
  read(maxLength: number): Promise<Uint8Array | null>;
  finishWrite(): Promise<void>;
}

const BINDINGS: Record<string, string> = { "linux-x64": "@chainsafe/libp2p-quic-linux-x64-gnu" };

function loadQuinn(): Quinn | undefined {
  const name = BINDINGS[`${process.platform}-${process.arch}`];
  if (name === undefined) return undefined;
  try {
    return createRequire(import.meta.url)(name) as Quinn;
  } catch {
    return undefined; // not installed here (an optional dependency), or not for this libc
  }
}

const quinn = loadQuinn();

/** Whether QUIC can be used on this machine. */
export const quicAvailable = quinn !== undefined;

/**
 * QUIC's own idle timeout: a peer whose packets stop (gone, or stopped) is given up after this
 * long. The binding also takes it as the time a dial may take (it ignores its handshake timeout
 * and ICMP errors), so dials are bounded by DialOptions.timeoutMs as well.
 */
const IDLE_TIMEOUT_MS = 10_000;

function quinnConfig(binding: Quinn, key: Ed25519Key): unknown {
  return new binding.QuinnConfig({
    privateKeyProto: key.proto,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    maxIdleTimeout: IDLE_TIMEOUT_MS,
    keepAliveInterval: IDLE_TIMEOUT_MS / 3,
    maxConcurrentStreamLimit: 4,
    // The binding's defaults: far larger windows measured slower (docs/decisions.md).
    maxStreamData: 10_000_000,
    maxConnectionData: 15_000_000,
    receiveBufferSize: 4 * 1024 * 1024,
    sendBufferSize: 4 * 1024 * 1024,
    shutdownTimeout: 1000,
  });
}

export function unavailable(): TeleportError {
  return new TeleportError(
    ErrorCode.UNAVAILABLE,
    `QUIC is not available on ${process.platform}-${process.arch} (its native binding is not installed)`,
  );
}

/** The binding's errors carry only a message. */
export function quicError(err: unknown, context: string): TeleportError {
  if (err instanceof TeleportError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const code = /timed out/i.test(message) ? ErrorCode.TIMEOUT : ErrorCode.CONNECTION;
  return new TeleportError(code, `${context}: ${message}`);
}

/** Whether a server's accept failed because the server is closed, not because one handshake did. */
export function isServerClosed(err: unknown): boolean {
  return err instanceof Error && err.message === "server closed";
}

/** A QUIC server endpoint listening with `key` (the host's). */
export function quinnServer(key: Ed25519Key, host: string, port: number): QuinnServer {
  if (quinn === undefined) throw unavailable();
  let raw: QuinnServer;
  try {
    raw = new quinn.Server(quinnConfig(quinn, key), host, port);
  } catch (err) {
    throw quicError(err, `listening on UDP ${host}:${port}`);
  }
  return {
    port: () => raw.port(),
    inboundConnection: async () => trackedConnection(await tracked(raw.inboundConnection())),
    abort: () => tracked(raw.abort()),
  };
}

/**
 * This thread's calls into the binding that have not settled. The binding settles each from its
 * own threads through a threadsafe function of the thread that called; Node before 24.14 frees a
 * worker's threadsafe functions when the worker exits without waiting for those threads
 * (nodejs/node#55706), and a call settled after that writes to freed memory: the heap corruption
 * ("corrupted double-linked list", or an abort in napi_call_threadsafe_function) of pulls whose
 * stream threads ended with QUIC reads or handshakes still pending. The stream pool no longer
 * uses the binding from worker threads (its QUIC streams run in the main thread, see
 * client/pool/stream-threads.ts); the tracking stays so that shutdownQuic, which the CLI runs
 * before the process exits, still waits for them.
 */
const pending = new Set<Promise<unknown>>();

function tracked<T>(call: Promise<T>): Promise<T> {
  pending.add(call);
  const settled = () => pending.delete(call);
  call.then(settled, settled);
  return call;
}

function trackedStream(raw: QuinnStream): QuinnStream {
  return {
    write: (data) => tracked(raw.write(data)),
    read: (maxLength) => tracked(raw.read(maxLength)),
    finishWrite: () => tracked(raw.finishWrite()),
  };
}

function trackedConnection(raw: QuinnConnection): QuinnConnection {
  return {
    outboundStream: async () => trackedStream(await tracked(raw.outboundStream())),
    inboundStream: async () => trackedStream(await tracked(raw.inboundStream())),
    remoteMultiaddr: () => raw.remoteMultiaddr(),
    closed: () => tracked(raw.closed()),
    abort: () => raw.abort(),
    rtt: () => raw.rtt(),
  };
}

function trackedClient(raw: QuinnClient): QuinnClient {
  return {
    outboundConnection: async (ip, port) =>
      trackedConnection(await tracked(raw.outboundConnection(ip, port))),
    abort: () => raw.abort(),
  };
}

/**
 * This thread's QUIC endpoint for dialling, with a key of its own; made on first use. `localPort`
 * is its UDP socket's, where the addon can tell (the socket new since just before it was made):
 * a hole punch is sent from that socket (reach/).
 */
let dialer: { client: QuinnClient; key: Ed25519Key; localPort: number | undefined } | undefined;

export function clientEndpoint(newKey: () => Ed25519Key): {
  client: QuinnClient;
  key: Ed25519Key;
  localPort: number | undefined;
} {
  if (quinn === undefined) throw unavailable();
  if (dialer === undefined) {
    const key = newKey();
    const before = new Set(nativeUdp?.udpLocalPorts());
    const client = trackedClient(new quinn.Client(quinnConfig(quinn, key), 0));
    const made = nativeUdp?.udpLocalPorts().filter((port) => !before.has(port));
    dialer = { client, key, localPort: made?.length === 1 ? made[0] : undefined };
  }
  return dialer;
}

/**
 * A quinn connection used the careful way: `closed()` is awaited once and shared, `abort()` runs
 * at most once and never after the close, and the RTT is not asked of a closed connection. A
 * precaution: the binding is undocumented, and a Rust panic aborts the process.
 */
export class Conn {
  readonly raw: QuinnConnection;
  readonly closed: Promise<void>;
  #done = false;

  constructor(raw: QuinnConnection) {
    this.raw = raw;
    const ended = () => {
      this.#done = true;
      live.delete(this);
    };
    live.add(this);
    this.closed = raw.closed().then(ended, ended);
  }

  abort(): void {
    if (this.#done) return;
    this.#done = true;
    this.raw.abort();
  }

  rtt(): number | undefined {
    return this.#done ? undefined : this.raw.rtt();
  }
}

/** This thread's open connections, for shutdownQuic. */
const live = new Set<Conn>();

/**
 * How long shutdownQuic waits for the binding to settle the calls still pending: once their
 * connections and endpoint are closed they fail at once, so this bounds only the unforeseen. It
 * is below the stream pool's CLOSE_TIMEOUT_MS, after which a stream thread is terminated.
 */
const SETTLE_TIMEOUT_MS = 2000;

/**
 * Closes this thread's QUIC connections and its dialling endpoint, and waits until they are
 * gone and every call into the binding has settled. The CLI calls it before the process exits
 * (as does a stream worker, should one ever use QUIC): the binding crashes the process (SIGSEGV,
 * abort, heap corruption) if a thread's environment is torn down under live QUIC state or with
 * a call pending (see `pending`).
 */
export async function shutdownQuic(): Promise<void> {
  const release = holdEventLoop(); // the binding's promises alone would let this thread end
  try {
    const closing = [...live];
    for (const connection of closing) connection.abort();
    await Promise.all(closing.map((connection) => connection.closed));
    dialer?.client.abort();
    dialer = undefined;
    await pendingSettled(SETTLE_TIMEOUT_MS);
  } finally {
    release();
  }
}

async function pendingSettled(timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (pending.size > 0 && performance.now() < deadline) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(resolve, deadline - performance.now());
    });
    await Promise.race([Promise.allSettled([...pending]), timeout]);
    clearTimeout(timer);
  }
}

/**
 * The binding's promises do not keep Node's event loop alive (a socket does), so a process
 * waiting only on a QUIC read would exit. Each open stream and listener holds it open instead.
 */
let holders = 0;
let holdTimer: NodeJS.Timeout | undefined;

/** Holds the event loop open until the returned function is called (once counts). */
export function holdEventLoop(): () => void {
  if (holders++ === 0) holdTimer = setInterval(() => {}, 1 << 30);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--holders === 0) clearInterval(holdTimer);
  };
}
