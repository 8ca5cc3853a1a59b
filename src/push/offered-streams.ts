/**
 * The data streams of a host's pull of an upload, which the pusher dials: the host cannot dial
 * the pusher (it may sit behind NAT). When the pull's stream pool wants a stream, a one-time
 * token goes to the pusher on the control connection (UPLOAD_STREAM_WANTED); the pusher dials
 * the host as any data stream does, proves the write secret, and gives the token back
 * (UPLOAD_STREAM); the two swap roles on that stream as on the control connection, and the
 * stream is handed to the pull that wanted it (docs/decisions.md, "Push").
 *
 * A token is bound to the upload's control connection (Hello.clientId), taken once, and
 * expires; tokens waiting are bounded per upload and per host, so a pusher cannot make the
 * host hold more than its pulls asked for.
 */
import { randomBytes } from "node:crypto";
import { closeSync } from "node:fs";
import type { Socket } from "node:net";
import type { TeleportClient } from "../client/client.js";
import type { HostConnection } from "../client/host-connection.js";
import { DataStreamFactory, type DataStreamOptions } from "../client/pool/data-streams.js";
import type { RoutedSocket, RoutedSockets, RoutedStreamsSpec } from "../client/pool/routed-streams.js";
import { ErrorCode, TeleportError } from "../errors.js";
import type { AcceptedUpload } from "../host/upload-request.js";
import { platformIo } from "../platform/io.js";
import type { HostIdentity } from "../transport/identity.js";
import { HANDSHAKE_TIMEOUT_MS, type TransportKind, type TransportStream } from "../transport/transport.js";
import { UPLOAD_STREAM_TOKEN_SIZE } from "../wire/messages.js";

/** How long the pusher has to dial a stream once asked: a handshake's time. */
export const OFFER_TIMEOUT_MS = HANDSHAKE_TIMEOUT_MS;
/** Streams one upload may be waiting for: more than a pool opens at once (its spares included). */
const MAX_WANTED_PER_UPLOAD = 64;
/** Streams all uploads together may be waiting for. */
const MAX_WANTED = 1024;

/**
 * What an upload's pull asked for, until the pusher gives its token back or it expires: a stream
 * (taken in this thread), or a routed socket (handed to a stream thread before its TLS).
 */
class Wanted<T> {
  /** The upload's control connection (Hello.clientId, hex): only its pusher's streams are taken. */
  readonly pusher: string;
  readonly value: Promise<T>;
  readonly #discard: (value: T) => void;
  #resolve!: (value: T) => void;
  #reject!: (error: TeleportError) => void;
  /** The pull has its answer: the stream, or why there is none. */
  #settled = false;
  /** Forgets the token when it expires. */
  expiry: NodeJS.Timeout | undefined;

  constructor(pusher: string, discard: (value: T) => void) {
    this.pusher = pusher;
    this.#discard = discard;
    this.value = new Promise<T>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  /** Hands the stream to the pull; one it no longer waits for is closed at once. */
  give(value: T): void {
    if (this.#settled) this.#discard(value);
    else this.#resolve(value);
    this.#settled = true;
  }

  fail(error: TeleportError): void {
    if (!this.#settled) this.#reject(error);
    this.#settled = true;
  }
}

type Waiting =
  | { routed: false; wanted: Wanted<TransportStream> }
  | { routed: true; wanted: Wanted<RoutedSocket> };

/** The host's streams wanted from its pushers, by token (one per host: the bounds are the host's). */
export class StreamOffers {
  readonly #wanted = new Map<string, Waiting>();
  readonly #timeoutMs: number;

  constructor(timeoutMs = OFFER_TIMEOUT_MS) {
    this.#timeoutMs = timeoutMs;
  }

  /**
   * A new token for `pusher`, and the stream that gives it back (rejected if none does in time).
   * A token whose wait `signal` cancels stays valid until it expires: the pusher may be dialing
   * already, and its stream is then taken and closed, not refused as a wrong one.
   */
  want(pusher: string, signal?: AbortSignal): { token: Buffer; value: Promise<TransportStream> } {
    const wanted = new Wanted<TransportStream>(pusher, (stream) => stream.stream.destroy());
    return { token: this.#register({ routed: false, wanted }, signal), value: wanted.value };
  }

  /**
   * As want, for a stream the pusher sends its token ahead of as a route: its socket, before any
   * TLS, for a stream thread to take (client/pool/routed-streams.ts).
   */
  wantRouted(pusher: string, signal?: AbortSignal): { token: Buffer; value: Promise<RoutedSocket> } {
    const wanted = new Wanted<RoutedSocket>(pusher, (socket) => closeSync(socket.fd));
    return { token: this.#register({ routed: true, wanted }, signal), value: wanted.value };
  }

  #register(waiting: Waiting, signal: AbortSignal | undefined): Buffer {
    const { wanted } = waiting;
    let count = 0;
    for (const other of this.#wanted.values()) if (other.wanted.pusher === wanted.pusher) count++;
    if (count >= MAX_WANTED_PER_UPLOAD || this.#wanted.size >= MAX_WANTED)
      throw new TeleportError(ErrorCode.HOST_BUSY, "too many data streams asked for and not yet come");
    const token = randomBytes(UPLOAD_STREAM_TOKEN_SIZE);
    const key = token.toString("hex");
    this.#wanted.set(key, waiting);
    const cancel = () => wanted.fail(new TeleportError(ErrorCode.CANCELLED, "data stream no longer wanted"));
    const timer = setTimeout(() => {
      this.#wanted.delete(key);
      wanted.fail(new TeleportError(ErrorCode.TIMEOUT, "the pusher did not open a data stream in time"));
    }, this.#timeoutMs);
    timer.unref();
    wanted.expiry = timer;
    signal?.addEventListener("abort", cancel, { once: true });
    if (signal?.aborted === true) cancel();
    const settled = () => signal?.removeEventListener("abort", cancel);
    wanted.value.then(settled, settled);
    return token;
  }

  /**
   * The stream that gives `token` back over a connection of `pusher` (UPLOAD_STREAM): handed to
   * the pull that wanted it once the roles are swapped on it. A token unknown, used, expired,
   * another client's, or wanted routed is refused.
   */
  take(token: Buffer, pusher: string | undefined): AcceptedUpload {
    const waiting = this.#wanted.get(token.toString("hex"));
    if (waiting === undefined || waiting.routed || pusher === undefined || waiting.wanted.pusher !== pusher)
      throw new TeleportError(ErrorCode.AUTH, "no data stream is wanted with this token");
    // Taken now: it cannot be given twice, though the stream is handed over only at UPLOAD_SWITCH.
    this.#takeWaiting(token);
    const { wanted } = waiting;
    return {
      receive: (stream) => {
        const ended = new Promise<number>((resolve) => stream.stream.once("close", () => resolve(0)));
        wanted.give(stream);
        return ended;
      },
    };
  }

  /**
   * A connection that came with `route` before its TLS handshake: if a stream is wanted routed
   * with that token, its descriptor goes to the pull's stream thread with the bytes read past the
   * route, and this thread's socket is closed (the descriptor lives on in the thread's). That
   * thread checks, inside TLS, that it is the pusher's and gives the token back. Any other is
   * left to TLS here, where UPLOAD_STREAM refuses what nothing wants.
   */
  route(route: Buffer, socket: Socket): boolean {
    const waiting = this.#wanted.get(route.toString("hex"));
    if (waiting === undefined || !waiting.routed) return false;
    this.#takeWaiting(route);
    const fd = platformIo.duplicate(socket);
    // In paused mode read() gives every byte read so far: the start of the TLS handshake.
    const head = (socket.read() as Buffer | null) ?? Buffer.alloc(0);
    socket.destroy();
    if (fd === undefined)
      waiting.wanted.fail(new TeleportError(ErrorCode.INTERNAL, "no descriptor to hand over"));
    else waiting.wanted.give({ fd, head, token: Buffer.from(route) });
    return true;
  }

  /** Takes the token's wait, once: it cannot be given twice. */
  #takeWaiting(token: Buffer): Waiting | undefined {
    const key = token.toString("hex");
    const waiting = this.#wanted.get(key);
    if (waiting === undefined) return undefined;
    this.#wanted.delete(key);
    clearTimeout(waiting.wanted.expiry);
    return waiting;
  }

  /** Tokens waiting, for tests. */
  get waiting(): number {
    return this.#wanted.size;
  }
}

/**
 * The data streams of one upload's pull, each asked of the pusher. Where the pusher routes them
 * (`routed`: Feature.ROUTED_STREAMS, over TCP, with descriptors to hand over), the pool runs them
 * in its worker threads, each taking its socket before any TLS (client/pool/routed-streams.ts);
 * otherwise in the host's main thread, where the host accepted their sockets.
 */
export class OfferedStreams extends DataStreamFactory {
  readonly #client: TeleportClient;
  readonly #offers: StreamOffers;
  readonly #pusher: string;
  readonly #routed: RoutedStreamsSpec | undefined;
  /** Whether any stream asked for has come. */
  #came = false;
  /**
   * An offer expired before any stream came: the pusher grants the feature but does not dial
   * (or cannot reach the host again). Later offers fail at once, so the pool gives up soon.
   */
  #noneCome = false;

  /**
   * Streams for `client`'s pull (a client made by `over` on the upload's connection from
   * `pusher`), routed to the pool's threads, which take them with the host's `identity`, where
   * that is given.
   */
  constructor(
    client: TeleportClient,
    offers: StreamOffers,
    pusher: string,
    identity?: Pick<HostIdentity, "keyPem" | "certPem">,
  ) {
    super(client.dataStreams({ encrypted: true }).spec);
    this.#client = client;
    this.#offers = offers;
    this.#pusher = pusher;
    this.#routed = identity && { identity, pusher: Buffer.from(pusher, "hex") };
  }

  override get inMainThread(): boolean {
    return this.#routed === undefined;
  }

  override get routed(): { spec: RoutedStreamsSpec; sockets: RoutedSockets } | undefined {
    const spec = this.#routed;
    if (spec === undefined) return undefined;
    const next = (signal?: AbortSignal) => this.#ask(() => this.#offers.wantRouted(this.#pusher, signal));
    return { spec, sockets: { next } };
  }

  /** Asks the pusher for a stream (on whatever transport its control connection came over). */
  override async open(_transport: TransportKind, options: DataStreamOptions = {}): Promise<HostConnection> {
    const offered = await this.#ask(() => this.#offers.want(this.#pusher, options.signal));
    return this.connectOver(offered, options);
  }

  /** What `want` waits for once its token has gone to the pusher (UPLOAD_STREAM_WANTED). */
  async #ask<T>(want: () => { token: Buffer; value: Promise<T> }): Promise<T> {
    if (this.#noneCome) throw new TeleportError(ErrorCode.CONNECTION, "the pusher opens no data streams");
    const { token, value } = want();
    this.#client.wantUploadStream(token);
    const came = await value.catch((err: unknown) => {
      if (!this.#came && err instanceof TeleportError && err.code === ErrorCode.TIMEOUT)
        this.#noneCome = true;
      throw err;
    });
    this.#came = true;
    return came;
  }

  /** Whether the pusher never opened a stream asked for: the pull is better off without them. */
  get noneCame(): boolean {
    return this.#noneCome;
  }
}
