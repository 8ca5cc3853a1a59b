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
import type { TeleportClient } from "../client/client.js";
import type { HostConnection } from "../client/host-connection.js";
import { DataStreamFactory, type DataStreamOptions } from "../client/pool/data-streams.js";
import { ErrorCode, TeleportError } from "../errors.js";
import type { AcceptedUpload } from "../host/upload-request.js";
import { HANDSHAKE_TIMEOUT_MS, type TransportKind, type TransportStream } from "../transport/transport.js";
import { UPLOAD_STREAM_TOKEN_SIZE } from "../wire/messages.js";

/** How long the pusher has to dial a stream once asked: a handshake's time. */
export const OFFER_TIMEOUT_MS = HANDSHAKE_TIMEOUT_MS;
/** Streams one upload may be waiting for: more than a pool opens at once (its spares included). */
const MAX_WANTED_PER_UPLOAD = 64;
/** Streams all uploads together may be waiting for. */
const MAX_WANTED = 1024;

/** A stream an upload's pull asked for, until the pusher gives its token back or it expires. */
class WantedStream {
  /** The upload's control connection (Hello.clientId, hex): only its pusher's streams are taken. */
  readonly pusher: string;
  readonly stream: Promise<TransportStream>;
  #resolve!: (stream: TransportStream) => void;
  #reject!: (error: TeleportError) => void;
  /** The pull has its answer: the stream, or why there is none. */
  #settled = false;
  /** Forgets the token when it expires. */
  expiry: NodeJS.Timeout | undefined;

  constructor(pusher: string) {
    this.pusher = pusher;
    this.stream = new Promise<TransportStream>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  /** Hands the stream to the pull; one it no longer waits for is closed at once. */
  give(stream: TransportStream): void {
    if (this.#settled) stream.stream.destroy();
    else this.#resolve(stream);
    this.#settled = true;
  }

  fail(error: TeleportError): void {
    if (!this.#settled) this.#reject(error);
    this.#settled = true;
  }
}

/** The host's streams wanted from its pushers, by token (one per host: the bounds are the host's). */
export class StreamOffers {
  readonly #wanted = new Map<string, WantedStream>();
  readonly #timeoutMs: number;

  constructor(timeoutMs = OFFER_TIMEOUT_MS) {
    this.#timeoutMs = timeoutMs;
  }

  /**
   * A new token for `pusher`, and the stream that gives it back (rejected if none does in time).
   * A token whose wait `signal` cancels stays valid until it expires: the pusher may be dialing
   * already, and its stream is then taken and closed, not refused as a wrong one.
   */
  want(pusher: string, signal?: AbortSignal): { token: Buffer; stream: Promise<TransportStream> } {
    let waiting = 0;
    for (const wanted of this.#wanted.values()) if (wanted.pusher === pusher) waiting++;
    if (waiting >= MAX_WANTED_PER_UPLOAD || this.#wanted.size >= MAX_WANTED)
      throw new TeleportError(ErrorCode.HOST_BUSY, "too many data streams asked for and not yet come");
    const token = randomBytes(UPLOAD_STREAM_TOKEN_SIZE);
    const key = token.toString("hex");
    const wanted = new WantedStream(pusher);
    this.#wanted.set(key, wanted);
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
    wanted.stream.then(settled, settled);
    return { token, stream: wanted.stream };
  }

  /**
   * The stream that gives `token` back over a connection of `pusher` (UPLOAD_STREAM): handed to
   * the pull that wanted it once the roles are swapped on it. A token unknown, used, expired or
   * another client's is refused.
   */
  take(token: Buffer, pusher: string | undefined): AcceptedUpload {
    const key = token.toString("hex");
    const wanted = this.#wanted.get(key);
    if (wanted === undefined || pusher === undefined || wanted.pusher !== pusher)
      throw new TeleportError(ErrorCode.AUTH, "no data stream is wanted with this token");
    // Taken now: it cannot be given twice, though the stream is handed over only at UPLOAD_SWITCH.
    this.#wanted.delete(key);
    clearTimeout(wanted.expiry);
    return {
      receive: (stream) => {
        const ended = new Promise<void>((resolve) => stream.stream.once("close", () => resolve()));
        wanted.give(stream);
        return ended;
      },
    };
  }

  /** Tokens waiting, for tests. */
  get waiting(): number {
    return this.#wanted.size;
  }
}

/**
 * The data streams of one upload's pull: each asked of the pusher and run in the host's main
 * thread, where the host accepted its socket.
 */
export class OfferedStreams extends DataStreamFactory {
  readonly #client: TeleportClient;
  readonly #offers: StreamOffers;
  readonly #pusher: string;
  /** Whether any stream asked for has come. */
  #came = false;
  /**
   * An offer expired before any stream came: the pusher grants the feature but does not dial
   * (or cannot reach the host again). Later offers fail at once, so the pool gives up soon.
   */
  #noneCome = false;

  /** Streams for `client`'s pull (a client made by `over` on the upload's connection from `pusher`). */
  constructor(client: TeleportClient, offers: StreamOffers, pusher: string) {
    super(client.dataStreams({ encrypted: true }).spec);
    this.#client = client;
    this.#offers = offers;
    this.#pusher = pusher;
  }

  override get inMainThread(): boolean {
    return true;
  }

  /** Asks the pusher for a stream (on whatever transport its control connection came over). */
  override async open(_transport: TransportKind, options: DataStreamOptions = {}): Promise<HostConnection> {
    if (this.#noneCome) throw new TeleportError(ErrorCode.CONNECTION, "the pusher opens no data streams");
    const { token, stream } = this.#offers.want(this.#pusher, options.signal);
    this.#client.wantUploadStream(token);
    const offered = await stream.catch((err: unknown) => {
      if (!this.#came && err instanceof TeleportError && err.code === ErrorCode.TIMEOUT)
        this.#noneCome = true;
      throw err;
    });
    this.#came = true;
    return this.connectOver(offered, options);
  }

  /** Whether the pusher never opened a stream asked for: the pull is better off without them. */
  get noneCame(): boolean {
    return this.#noneCome;
  }
}
