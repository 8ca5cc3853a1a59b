/**
 * Data streams routed to the thread that runs them, for an upload's pull (push/offered-streams.ts).
 * The pusher dials them, so they arrive at the host's listener, in its main thread; each comes
 * with its token as a route ahead of TLS (transport/preamble.ts). The main thread hands the
 * connection's descriptor, before any TLS, to the stream thread that asked for it, and that
 * thread does the rest where the pull's other streams would: the TLS handshake, the pusher's
 * proof of the write secret and its token, the swap of roles, then the stream as any other. So
 * decryption, verification and writes run on every core, not in the host's main thread.
 *
 * The route says only which thread takes the connection: it crosses in the clear, so the token
 * is checked again inside TLS, with the proof, before anything is asked of the stream.
 */
import { closeSync } from "node:fs";
import { Socket } from "node:net";
import type { MessagePort } from "node:worker_threads";
import { Connection } from "../../engine/connection.js";
import { ErrorCode, TeleportError, toTeleportError } from "../../errors.js";
import type { HostIdentity } from "../../transport/identity.js";
import { acceptTls } from "../../transport/tcp.js";
import {
  HANDSHAKE_TIMEOUT_MS,
  type TransportKind,
  type TransportStream,
  verifyAuthProof,
} from "../../transport/transport.js";
import { MAX_CHUNK_SIZE } from "../../wire/limits.js";
import {
  emptyCodec,
  type Hello,
  Messages,
  MessageType,
  MIN_PROTOCOL_VERSION,
  PROTOCOL_MAGIC,
  PROTOCOL_VERSION,
  pingCodec,
  welcomeCodec,
} from "../../wire/messages.js";
import { MessageHandlers } from "../../wire/registry.js";
import type { HostConnection } from "../host-connection.js";
import { DataStreamFactory, type DataStreamOptions, type DataStreamSpec } from "./data-streams.js";
import { deserializeError, type SerializedError, serializeError } from "./stream-protocol.js";

/** A connection handed over before its TLS handshake: its descriptor, what was read past its route, and the route. */
export interface RoutedSocket {
  fd: number;
  head: Uint8Array;
  token: Uint8Array;
}

/** Where a thread's routed streams come from: the main thread, which asks the pusher for each. */
export interface RoutedSockets {
  next(signal?: AbortSignal): Promise<RoutedSocket>;
}

/** What a stream thread must know to take routed streams as the host would. */
export interface RoutedStreamsSpec {
  /** The host's TLS identity: the pusher pins it. */
  identity: Pick<HostIdentity, "keyPem" | "certPem">;
  /** The pusher's control connection (Hello.clientId): its streams give the same. */
  pusher: Uint8Array;
}

/** A thread asks for a socket, or takes back an ask it no longer waits for (its stream was dropped). */
type Ask = { id: number; cancel?: true };
type Answer = { id: number; socket: RoutedSocket } | { id: number; error: SerializedError };

/**
 * The main thread's side of a thread's channel for routed sockets: each ask is answered with the
 * next socket `sockets` gives, or why there is none. An ask the thread takes back, or all of them
 * once `stopped`, is cancelled, so the pusher's stream, should it still come, is closed here,
 * where it was accepted. A socket the thread can no longer take (its channel closed) is closed here.
 */
export function serveRoutedSockets(port: MessagePort, sockets: RoutedSockets, stopped: AbortSignal): void {
  let open = true;
  port.once("close", () => {
    open = false;
  });
  const asks = new Map<number, AbortController>();
  stopped.addEventListener("abort", () => {
    for (const ask of asks.values()) ask.abort();
  });
  port.on("message", ({ id, cancel }: Ask) => {
    if (cancel === true) {
      asks.get(id)?.abort();
      return;
    }
    const ask = new AbortController();
    if (stopped.aborted) ask.abort();
    else asks.set(id, ask);
    sockets
      .next(ask.signal)
      .then(
        (socket) => {
          if (open) port.postMessage({ id, socket } satisfies Answer);
          else closeSync(socket.fd);
        },
        (err: unknown) => {
          if (open) port.postMessage({ id, error: serializeError(toTeleportError(err)) } satisfies Answer);
        },
      )
      .finally(() => asks.delete(id));
  });
}

/** A stream thread's side of that channel. */
export class PortRoutedSockets implements RoutedSockets {
  readonly #port: MessagePort;
  readonly #waiting = new Map<number, (answer: Answer) => void>();
  #nextId = 1;

  constructor(port: MessagePort) {
    this.#port = port;
    port.on("message", (answer: Answer) => {
      const take = this.#waiting.get(answer.id);
      this.#waiting.delete(answer.id);
      if (take !== undefined) take(answer);
      // Given as the ask was taken back: closed as the socket it is. libuv owns it then; an
      // fs.close of a descriptor this thread did not open makes Node warn on the host's stderr.
      else if ("socket" in answer) new Socket({ fd: answer.socket.fd }).destroy();
    });
    port.unref();
  }

  next(signal?: AbortSignal): Promise<RoutedSocket> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const cancel = () => {
        this.#waiting.delete(id);
        this.#port.postMessage({ id, cancel: true } satisfies Ask);
        reject(new TeleportError(ErrorCode.CANCELLED, "data stream no longer wanted"));
      };
      if (signal?.aborted === true) {
        cancel();
        return;
      }
      signal?.addEventListener("abort", cancel, { once: true });
      this.#waiting.set(id, (answer) => {
        signal?.removeEventListener("abort", cancel);
        if ("socket" in answer) resolve(answer.socket);
        else reject(deserializeError(answer.error));
      });
      this.#port.postMessage({ id } satisfies Ask);
    });
  }
}

/** A stream thread's factory for routed streams: each opened on the next socket routed to it. */
export class RoutedStreamFactory extends DataStreamFactory {
  readonly #routed: RoutedStreamsSpec;
  readonly #sockets: RoutedSockets;

  constructor(spec: DataStreamSpec, routed: RoutedStreamsSpec, sockets: RoutedSockets) {
    super(spec);
    this.#routed = routed;
    this.#sockets = sockets;
  }

  override async open(_transport: TransportKind, options: DataStreamOptions = {}): Promise<HostConnection> {
    const socket = await this.#sockets.next(options.signal);
    const stream = await acceptTls(this.#routed.identity, socket.fd, socket.head, HANDSHAKE_TIMEOUT_MS);
    try {
      await takeOfferedStream(stream, {
        secret: this.spec.link.secret,
        pusher: Buffer.from(this.#routed.pusher),
        token: Buffer.from(socket.token),
      });
    } catch (err) {
      stream.stream.destroy();
      throw err;
    }
    return this.connectOver(stream, options);
  }
}

/** What a routed stream must prove before the host pulls over it. */
interface Expected {
  /** The write secret, which the pusher proves in HELLO. */
  secret: Buffer;
  pusher: Buffer;
  token: Buffer;
}

interface Settle {
  resolve: () => void;
  reject: (error: TeleportError) => void;
}
type Phase = "hello" | "token" | "switch" | "done";

/** The host's side of a routed stream's opening, frame by frame (see takeOfferedStream). */
class OfferedStreamOpening {
  static readonly handlers = new MessageHandlers<OfferedStreamOpening>("host")
    .on(Messages.HELLO, (opening, _id, hello) => opening.#hello(hello))
    .on(Messages.PING, (opening, id, ping) => opening.connection.send(MessageType.PONG, id, pingCodec, ping))
    .on(Messages.UPLOAD_STREAM, (opening, id, { token }) => opening.#token(id, token))
    .on(Messages.UPLOAD_SWITCH, (opening) => opening.#switch());

  readonly connection: Connection;
  readonly #stream: TransportStream;
  readonly #expected: Expected;
  readonly #done: Settle;
  #phase: Phase = "hello";

  static start(stream: TransportStream, expected: Expected, done: Settle): void {
    new OfferedStreamOpening(stream, expected, done);
  }

  private constructor(stream: TransportStream, expected: Expected, done: Settle) {
    this.#stream = stream;
    this.#expected = expected;
    this.#done = done;
    this.connection = new Connection(
      stream.stream,
      {
        allocateBody: (_type, _id, length) => {
          throw new TeleportError(ErrorCode.PROTOCOL, `a ${length}-byte frame before the roles are swapped`);
        },
        onFrame: (type, requestId, body) => {
          try {
            if (!OfferedStreamOpening.handlers.dispatch(this, type, requestId, body))
              throw new TeleportError(ErrorCode.PROTOCOL, `frame type ${type} before the roles are swapped`);
          } catch (err) {
            this.connection.destroy(toTeleportError(err));
          }
        },
        onClose: (error) => {
          if (this.#phase !== "done")
            done.reject(error ?? new TeleportError(ErrorCode.CONNECTION, "the pusher closed the stream"));
        },
      },
      { idleTimeoutMs: HANDSHAKE_TIMEOUT_MS },
    );
  }

  #expect(phase: Phase, what: string): void {
    if (this.#phase !== phase) throw new TeleportError(ErrorCode.PROTOCOL, `${what} out of turn`);
  }

  #hello(hello: Hello): void {
    this.#expect("hello", "HELLO");
    if (hello.magic !== PROTOCOL_MAGIC) throw new TeleportError(ErrorCode.PROTOCOL, "not a teleport client");
    if (hello.maxVersion < MIN_PROTOCOL_VERSION || hello.minVersion > PROTOCOL_VERSION)
      throw new TeleportError(ErrorCode.VERSION, "the pusher speaks no protocol version of this host's");
    const { pusher, secret } = this.#expected;
    // Both checked, the proof in constant time, before either is answered.
    const proved = verifyAuthProof(this.#stream, secret, hello.authProof);
    if (!proved || hello.clientId === undefined || !hello.clientId.equals(pusher))
      throw new TeleportError(ErrorCode.AUTH, "a routed stream that is not the pusher's");
    this.#phase = "token";
    this.connection.send(MessageType.WELCOME, 0, welcomeCodec, {
      version: Math.min(PROTOCOL_VERSION, hello.maxVersion),
      features: 0,
      shareName: "",
      maxChunkSize: MAX_CHUNK_SIZE,
    });
  }

  #token(requestId: number, token: Buffer): void {
    this.#expect("token", "UPLOAD_STREAM");
    if (!token.equals(this.#expected.token))
      throw new TeleportError(ErrorCode.AUTH, "a routed stream gave back another token than its route");
    this.#phase = "switch";
    this.connection.send(MessageType.END, requestId, emptyCodec, {});
  }

  #switch(): void {
    this.#expect("switch", "UPLOAD_SWITCH");
    this.#phase = "done";
    this.connection.release();
    this.#done.resolve();
  }
}

/**
 * The host's side of an upload stream's opening, on a routed stream: the pusher's HELLO (its
 * proof of the write secret, its client id), its UPLOAD_STREAM (the token it was routed by) and
 * UPLOAD_SWITCH, as HostSession answers them on a stream it takes. Resolves once the roles are
 * swapped: the host is then the stream's client.
 */
export function takeOfferedStream(stream: TransportStream, expected: Expected): Promise<void> {
  // The opening lives as long as its connection's handlers refer to it.
  return new Promise((resolve, reject) => OfferedStreamOpening.start(stream, expected, { resolve, reject }));
}
