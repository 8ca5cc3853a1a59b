/**
 * One client connection to the host: its handshake (HELLO: version, the link's secret, features),
 * then its requests, each run to END or ERROR. Frames are dispatched by the table of handlers
 * below, one per message the host is sent (see wire/registry.ts); the work of a request is done
 * by its own module: ManifestStream, ChunkSender, RangeSender, sendListing.
 */
import { Connection, encodeFrame } from "../engine/connection.js";
import { CreditGate } from "../engine/credit.js";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { PathFilter } from "../filter/path-filter.js";
import { answerPunch } from "../reach/host-punch.js";
import { ChunkCompression } from "../serve/chunk-compression.js";
import { ChunkSender } from "../serve/chunk-sender.js";
import { FileLookup } from "../serve/file-lookup.js";
import { ManifestStream, type SendFrame } from "../serve/manifest-stream.js";
import { OpenFiles } from "../serve/open-files.js";
import { SendLeases } from "../serve/send-leases.js";
import { streamKey } from "../transport/frame-mac.js";
import { type TransportStream, verifyAuthProof } from "../transport/transport.js";
import { FRAME_HEADER_SIZE } from "../wire/frame.js";
import {
  emptyCodec,
  entriesCodec,
  Feature,
  type Hello,
  MAX_CHUNK_SIZE,
  type ManifestRequest,
  Messages,
  MessageType,
  MIN_PROTOCOL_VERSION,
  PROTOCOL_MAGIC,
  PROTOCOL_VERSION,
  pingCodec,
  protocol,
  type UploadRequest,
  welcomeCodec,
} from "../wire/messages.js";
import { isWithin } from "../wire/path.js";
import { punchReadyCodec } from "../wire/punch-messages.js";
import { MessageHandlers } from "../wire/registry.js";
import { DeltaSender } from "./delta-sender.js";
import { grantableFeatures } from "./host-context.js";
import { sendListing } from "./listing.js";
import {
  type AdmittedStream,
  ControlSession,
  type LentStreamKey,
  listingSender,
} from "./plaintext-clients.js";
import { RangeSender } from "./range-sender.js";
import type { ClientPeer, PathRequest, SessionContext } from "./session-context.js";
import { watchShare } from "./share-watch.js";
import type { AcceptedUpload, UploadReceiver } from "./upload-request.js";

export type { ClientEvent, ClientPeer, PathRequest, SessionContext } from "./session-context.js";

/** Requests one connection may have open at once; more is a protocol error. */
const MAX_OPEN_REQUESTS = 256;
/** Largest request frame accepted from a client (a GET_CHUNKS with long paths). */
const MAX_REQUEST_BODY = 1024 * 1024;
/** A request being served: cancelled by CANCEL, paced by the client's CREDIT. */
interface OpenRequest {
  abort: AbortController;
  credit: CreditGate;
}

export class HostSession {
  /** What the host does with each message a client sends (HELLO is taken before any other). */
  static readonly #handlers = new MessageHandlers<HostSession>("host")
    .on(Messages.HELLO, (session, requestId, hello) => session.#onHello(requestId, hello))
    .on(Messages.PING, (session, requestId, ping) =>
      session.#connection.send(MessageType.PONG, requestId, pingCodec, ping),
    )
    .on(Messages.CANCEL, (session, requestId) => session.#requests.get(requestId)?.abort.abort())
    .on(Messages.CREDIT, (session, requestId, { bytes }) =>
      session.#requests.get(requestId)?.credit.grant(bytes),
    )
    .on(Messages.LIST, (session, requestId, { credit, path, recursive }) =>
      session.#serve(requestId, credit, (open) => {
        session.#told("list", path);
        const send = session.#creditedSender(requestId, open);
        return sendListing(session.#context.share, path, recursive !== 0, send, open.abort.signal);
      }),
    )
    .on(Messages.STAT, (session, requestId, { path }) =>
      session.#serve(requestId, Number.MAX_SAFE_INTEGER, () => session.#stat(requestId, path)),
    )
    .on(Messages.MANIFEST, (session, requestId, request) =>
      session.#serve(requestId, request.credit, (open) => {
        session.#told("manifest", request.path);
        return session.#manifest(requestId, request, open);
      }),
    )
    .on(Messages.GET_CHUNKS, (session, requestId, { chunks, compressLevel }) => {
      if (!session.#takesStream()) return;
      const level = (session.#features & Feature.COMPRESSION) === 0 ? 0 : (compressLevel ?? 0);
      session.#serve(requestId, Number.MAX_SAFE_INTEGER, (open) =>
        session.#chunks.send(requestId, chunks, level, open.abort.signal),
      );
    })
    .on(Messages.DELTA, (session, requestId, { items }) =>
      session.#serve(requestId, Number.MAX_SAFE_INTEGER, (open) =>
        session.#deltas.send(requestId, items, open.abort.signal),
      ),
    )
    .on(Messages.WATCH, (session, requestId, { credit, path }) =>
      session.#serve(requestId, credit, (open) =>
        watchShare(session.#context.share, path, session.#creditedSender(requestId, open), open.abort.signal),
      ),
    )
    .on(Messages.READ_RANGE, (session, requestId, request) =>
      session.#serve(requestId, request.credit, (open) => {
        session.#told("read", request.path);
        return session.#ranges.send(requestId, request, open.credit, open.abort.signal);
      }),
    )
    .on(Messages.UPLOAD, (session, requestId, request) =>
      session.#serve(requestId, Number.MAX_SAFE_INTEGER, () => session.#upload(request)),
    )
    .on(Messages.UPLOAD_STREAM, (session, requestId, { token }) => session.#uploadStream(requestId, token))
    .on(Messages.UPLOAD_SWITCH, (session) => session.#swapRoles())
    .on(Messages.UPLOAD_RESULT, (session, _requestId, result) => session.#context.onUploadResult?.(result))
    .on(Messages.UPLOAD_STREAM_WANTED, (session, _id, { token }) =>
      session.#context.onUploadStreamWanted?.(token),
    )
    .on(Messages.PUNCH, (session, requestId, request) =>
      session.#serve(requestId, Number.MAX_SAFE_INTEGER, async () => {
        const ready = await answerPunch(session.#context.punch, request);
        session.#connection.send(MessageType.PUNCH_READY, requestId, punchReadyCodec, ready);
      }),
    );

  readonly #context: SessionContext;
  readonly #connection: Connection;
  readonly #stream: TransportStream;
  readonly #requests = new Map<number, OpenRequest>();
  readonly #openFiles: OpenFiles;
  readonly #leases: SendLeases;
  readonly #chunks: ChunkSender;
  readonly #ranges: RangeSender;
  readonly #deltas: DeltaSender;
  /** Waiting for HELLO, refusing a wrong proof (after a delay), or serving requests. */
  #phase: "hello" | "refusing" | "authenticated" = "hello";
  #refusalTimer: NodeJS.Timeout | undefined;
  /** A control connection that lends its key to plaintext streams: what it was listed. */
  #control: LentStreamKey | undefined;
  /** A plaintext stream: its requests' MACs, and the control connection it belongs to. */
  #plaintext: AdmittedStream | undefined;
  /** Features both sides have: HELLO's offer, of what this host supports. */
  #features = 0;
  readonly #authTimer: NodeJS.Timeout;
  /** HELLO's clientId, in hex, for ClientPeer. */
  #clientId: string | undefined;
  /** Counted in the host's Admission (since its first path request) until the connection closes. */
  #admitted = false;
  /** A QUIC data stream taken from another thread's client (see #takesStream). */
  #movedStreamTaken = false;
  /** The secret the client proved: the link's, or the write link's, which may also upload. */
  #proved: { secret: Buffer; mayUpload: boolean } | undefined;
  /** An upload taken (UPLOAD answered END), waiting for UPLOAD_SWITCH. */
  #acceptedUpload: AcceptedUpload | undefined;

  constructor(stream: TransportStream, context: SessionContext) {
    this.#stream = stream;
    this.#context = context;
    this.#openFiles = new OpenFiles((wirePath) => {
      this.#checkServed(wirePath);
      return context.share.openFile(wirePath);
    });
    this.#connection = new Connection(
      stream.stream,
      {
        allocateBody: (_type, _id, length) => {
          if (length > MAX_REQUEST_BODY) {
            throw new TeleportError(
              ErrorCode.FRAME_TOO_LARGE,
              `request of ${length} bytes is over the limit`,
            );
          }
          return Buffer.allocUnsafe(length);
        },
        onFrame: (type, requestId, body) => this.#onFrame(type, requestId, body),
        onClose: (error) => this.#onClose(error),
      },
      { idleTimeoutMs: context.idleTimeoutMs },
    );
    this.#leases = new SendLeases(context.pool, context.sendBudget);
    this.#chunks = new ChunkSender({
      connection: this.#connection,
      plainSocket: stream.plainSocket,
      openFiles: this.#openFiles,
      lookupFiles: () => new FileLookup(context.share),
      leases: this.#leases,
      recent: context.recent,
      checkServable: (path) => this.#checkServable(path),
      compression: context.compression && new ChunkCompression(context.compression),
      faults: context.faults,
    });
    this.#ranges = new RangeSender(this.#connection, this.#openFiles, this.#leases);
    this.#deltas = new DeltaSender(this.#connection, this.#openFiles);
    this.#authTimer = setTimeout(
      () => this.#connection.destroy(new TeleportError(ErrorCode.TIMEOUT, "no HELLO in time")),
      context.handshakeTimeoutMs,
    );
  }

  get closed(): Promise<void> {
    return this.#connection.closed;
  }

  close(): Promise<void> {
    return this.#connection.close();
  }

  destroy(): void {
    this.#connection.destroy();
  }

  /** `bytesReceived`: what the upload this connection swapped roles for took in. */
  #onClose(error: TeleportError | undefined, bytesReceived = 0): void {
    clearTimeout(this.#authTimer);
    clearTimeout(this.#refusalTimer);
    if (this.#admitted) this.#context.admission.release(this.#clientId);
    this.#control?.unregister();
    if (error !== undefined)
      this.#context.onSessionError?.(`${this.#stream.remoteAddress}:${this.#stream.remotePort}`, error);
    this.#context.onClientEvent?.({
      kind: "closed",
      peer: this.#peer(),
      authenticated: this.#phase === "authenticated",
      error,
      idle: this.#requests.size === 0,
      bytesSent: this.#stream.stats().bytesSent,
      bytesReceived,
    });
    for (const request of this.#requests.values()) request.abort.abort();
    this.#requests.clear();
    this.#chunks.close();
    this.#openFiles.closeAll();
  }

  #peer(): ClientPeer {
    return { address: this.#stream.remoteAddress, port: this.#stream.remotePort, id: this.#clientId };
  }

  #told(request: PathRequest, path: string): void {
    this.#checkServed(path);
    this.#admit();
    this.#context.onClientEvent?.({ kind: "request", peer: this.#peer(), request, path });
  }

  #onFrame(type: number, requestId: number, sealedBody: Buffer): void {
    let body = sealedBody;
    if (this.#phase === "refusing") return; // its refusal is on its way
    try {
      if (this.#phase === "hello" && type !== MessageType.HELLO) {
        throw new TeleportError(ErrorCode.PROTOCOL, "expected HELLO");
      }
      if (!this.#stream.encrypted) body = this.#openPlaintext(type, requestId, body);
      if (!this.#stream.encrypted && !protocol.allowsPlaintext(type)) {
        // Whatever crosses a plaintext stream may be read or changed on the way: only chunks do,
        // which the client checks against hashes it got over TLS.
        this.#refuse(requestId, "only chunks are served over an unencrypted stream");
      } else if (!HostSession.#handlers.dispatch(this, type, requestId, body)) {
        // Unknown message types from a newer client are refused per request, not fatally.
        this.#refuse(requestId, `unknown message type ${type}`);
      }
    } catch (err) {
      this.#fail(toTeleportError(err));
    }
  }

  /** Ends the connection for `error`, telling the client why. */
  #fail(error: TeleportError, authDelayWindowMs?: number): void {
    for (const request of this.#requests.values()) request.abort.abort();
    this.#connection.sendError(0, { code: error.code, message: error.detail, authDelayWindowMs });
    this.#connection.close(error);
  }

  /**
   * A plaintext stream's frame body once its MAC is checked. Its HELLO names the control
   * connection whose key the MACs are under, which must be open and the same client's.
   */
  #openPlaintext(type: number, requestId: number, body: Buffer): Buffer {
    if (!this.#context.allowPlaintext)
      throw new TeleportError(ErrorCode.AUTH, "unencrypted streams are not taken");
    this.#plaintext ??= this.#context.plaintextClients.admit(body, this.#stream.sessionBinding());
    return this.#plaintext.frameMac.open(type, requestId, body);
  }

  /** Over a plaintext stream, only chunks of files listed to its client are served. */
  #checkServable(path: string): void {
    this.#checkServed(path);
    if (this.#stream.encrypted) return;
    if (this.#plaintext === undefined) throw new TeleportError(ErrorCode.AUTH, "unauthenticated stream");
    this.#plaintext.control.checkListed(path);
  }

  /** A pusher serving one file of its folder serves nothing beside it (SessionContext.servedPath). */
  #checkServed(path: string): void {
    const served = this.#context.servedPath;
    if (served !== undefined && !isWithin(path, served))
      throw new TeleportError(ErrorCode.PATH_ESCAPE, `"${path}" is not what is being pushed`);
  }

  /** A TLS or QUIC connection asking for FRAME_MAC: its plaintext streams may name it. */
  #lendStreamKey(hello: Hello): void {
    if (!this.#stream.encrypted || (this.#features & Feature.FRAME_MAC) === 0) return;
    const key = streamKey(this.#proved?.secret ?? this.#context.secret, this.#stream.sessionBinding());
    this.#control = this.#context.plaintextClients.register(new ControlSession(key, hello.clientId));
  }

  #refuse(requestId: number, message: string): void {
    this.#connection.sendError(requestId, { code: ErrorCode.PROTOCOL, message });
  }

  #onHello(requestId: number, hello: Hello): void {
    if (this.#phase === "authenticated") {
      this.#refuse(requestId, "HELLO once authenticated");
      return;
    }
    if (hello.magic !== PROTOCOL_MAGIC) throw new TeleportError(ErrorCode.PROTOCOL, "not a teleport client");
    if (hello.maxVersion < MIN_PROTOCOL_VERSION || hello.minVersion > PROTOCOL_VERSION) {
      throw new TeleportError(
        ErrorCode.VERSION,
        `client speaks protocol ${hello.minVersion}-${hello.maxVersion}, host ${MIN_PROTOCOL_VERSION}-${PROTOCOL_VERSION}`,
      );
    }
    this.#clientId = hello.clientId?.toString("hex");
    if (!this.#authenticate(hello.authProof)) return;
    this.#features = hello.features & grantableFeatures(this.#context);
    if (this.#clientId !== undefined) this.#leases.setOwner(this.#clientId);
    this.#lendStreamKey(hello);
    this.#connection.send(MessageType.WELCOME, 0, welcomeCodec, {
      version: Math.min(PROTOCOL_VERSION, hello.maxVersion),
      features: this.#features,
      shareName: this.#context.share.name,
      oneFile: this.#context.share.only === undefined ? 0 : 1,
      maxChunkSize: MAX_CHUNK_SIZE,
    });
  }

  /**
   * Counts this connection's client among those the host serves, at its first request that
   * names a path (a pull's MANIFEST, `ls`, `cat`; data streams never ask one), or refuses the
   * request with HOST_BUSY and when to retry, when the host is full and the client can wait
   * (Feature.HOST_BUSY).
   */
  #admit(): void {
    if (this.#admitted) return;
    const canWait = (this.#features & Feature.HOST_BUSY) !== 0;
    this.#admitted = this.#context.admission.admit(canWait, this.#clientId);
    if (this.#admitted) return;
    const retryAfterMs = this.#context.admission.retryAfterMs();
    const message = `host busy, retry in ${Math.ceil(retryAfterMs / 1000)} s`;
    throw new TeleportError(ErrorCode.HOST_BUSY, message, { retryAfterMs });
  }

  /**
   * A QUIC data stream of a client served on another thread is refused at its first GET_CHUNKS
   * while other clients are served (Admission.takesMovedStream); once taken, it is kept. It is
   * refused by closing it, with no ERROR: to the client it is a lost stream, whose batches its
   * other streams take, where an ERROR would fail the batch, and with it the pull.
   */
  #takesStream(): boolean {
    if (this.#stream.transport !== "quic" || this.#admitted || this.#movedStreamTaken) return true;
    this.#movedStreamTaken = this.#context.admission.takesMovedStream(this.#clientId);
    if (!this.#movedStreamTaken)
      this.#connection.destroy(
        new TeleportError(ErrorCode.HOST_BUSY, "other clients are served: this client's streams stay on TCP"),
      );
    return this.#movedStreamTaken;
  }

  /**
   * Checks HELLO's proof of the link's secret. A wrong one is refused after the limiter's delay
   * for its address, during which the connection is heard no more; a right one is always taken.
   */
  #authenticate(authProof: Buffer): boolean {
    clearTimeout(this.#authTimer);
    const { secret, uploadSecret } = this.#context;
    // Both checked, each in constant time: how long a refusal takes says nothing of which it was near.
    const reads = verifyAuthProof(this.#stream, secret, authProof);
    const writes = uploadSecret !== undefined && verifyAuthProof(this.#stream, uploadSecret, authProof);
    if (reads || writes) {
      this.#proved =
        writes && uploadSecret !== undefined
          ? { secret: uploadSecret, mayUpload: true }
          : { secret, mayUpload: false };
      this.#phase = "authenticated";
      this.#context.onClientEvent?.({ kind: "authenticated", peer: this.#peer() });
      return true;
    }
    this.#phase = "refusing";
    const refused = new TeleportError(ErrorCode.AUTH, "the link's secret was not accepted");
    const { authLimiter } = this.#context;
    void Promise.resolve(authLimiter.failed(this.#stream.remoteAddress)).then((delayMs) => {
      if (delayMs === 0) this.#fail(refused);
      else this.#refusalTimer = setTimeout(() => this.#fail(refused, authLimiter.windowMs), delayMs);
    });
    return false;
  }

  /** Runs one request to completion: END on success, ERROR on failure, nothing if cancelled. */
  #serve(requestId: number, credit: number, run: (open: OpenRequest) => Promise<void>): void {
    if (requestId === 0 || this.#requests.has(requestId)) {
      throw new TeleportError(ErrorCode.PROTOCOL, `request id ${requestId} is invalid or already in use`);
    }
    if (this.#requests.size >= MAX_OPEN_REQUESTS) {
      throw new TeleportError(ErrorCode.PROTOCOL, `more than ${MAX_OPEN_REQUESTS} requests open at once`);
    }
    const open: OpenRequest = { abort: new AbortController(), credit: new CreditGate(credit) };
    this.#requests.set(requestId, open);
    // Async: a request refused as it starts (HOST_BUSY) is answered like any failed one.
    (async () => run(open))()
      .then(() => {
        if (!open.abort.signal.aborted) this.#connection.send(MessageType.END, requestId, emptyCodec, {});
      })
      .catch((err: unknown) => {
        if (open.abort.signal.aborted) return;
        const error = toTeleportError(err);
        const { retryAfterMs } = error;
        const busy = retryAfterMs === undefined ? {} : { authDelayWindowMs: 0, retryAfterMs };
        this.#connection.sendError(requestId, { code: error.code, message: error.detail, ...busy });
      })
      .finally(() => this.#requests.delete(requestId));
  }

  /** Sends a request's small response frames, each once the request has credit for it. */
  #creditedSender(requestId: number, open: OpenRequest): SendFrame {
    return async (type, codec, value) => {
      const frame = encodeFrame(type, requestId, codec, value);
      await open.credit.take(frame.length - FRAME_HEADER_SIZE, open.abort.signal);
      this.#connection.sendFrame(frame);
      await this.#connection.whenWritable();
    };
  }

  async #stat(requestId: number, path: string): Promise<void> {
    const { entry } = this.#context.share.stat(path);
    this.#connection.send(MessageType.ENTRIES, requestId, entriesCodec, { entries: [entry] });
  }

  #manifest(requestId: number, { path, filters }: ManifestRequest, open: OpenRequest): Promise<void> {
    const listedTo = this.#control?.session;
    const credited = this.#creditedSender(requestId, open);
    const send = listedTo === undefined ? credited : listingSender(credited, listedTo);
    const options = {
      entryErrors: (this.#features & Feature.ENTRY_ERRORS) !== 0,
      skippedEntries: (this.#features & Feature.SKIPPED_ENTRIES) !== 0,
      hardLinks: (this.#features & Feature.HARD_LINKS) !== 0,
      xattrs: (this.#features & Feature.XATTRS) !== 0,
      signal: open.abort.signal,
      exclude: PathFilter.forRequest(filters, path),
    };
    return new ManifestStream(this.#context, send, options).run(path);
  }

  /** UPLOAD: taken only from a client that proved the write secret, once the receiver has checked it. */
  async #upload(request: UploadRequest): Promise<void> {
    const uploads = this.#uploads();
    this.#told("upload", request.path);
    const routed = (this.#features & Feature.ROUTED_STREAMS) !== 0;
    this.#acceptedUpload = await uploads.accept(request, this.#clientId, routed);
  }

  /**
   * UPLOAD_STREAM: a data stream the pusher dialed for the pull of its upload, if the token is
   * one that pull wants; answered END, it is handed over at UPLOAD_SWITCH. A wrong token ends
   * the connection.
   */
  #uploadStream(requestId: number, token: Buffer): void {
    this.#acceptedUpload = this.#uploads().takeStream(token, this.#clientId);
    this.#connection.send(MessageType.END, requestId, emptyCodec, {});
  }

  /** The receiver, for a client that proved the write secret and has no upload taken yet. */
  #uploads(): UploadReceiver {
    const { uploads } = this.#context;
    if (uploads === undefined || this.#proved?.mayUpload !== true || this.#acceptedUpload !== undefined) {
      const why = uploads === undefined ? "this host takes no uploads" : "a read link may not upload";
      throw new TeleportError(ErrorCode.READ_ONLY, why);
    }
    return uploads;
  }

  /**
   * UPLOAD_SWITCH: the pusher's last frame as the client. The connection is handed to the
   * upload, on which the host is now the client; the session ends with it.
   */
  #swapRoles(): void {
    const upload = this.#acceptedUpload;
    const secret = this.#proved?.secret;
    if (upload === undefined || secret === undefined || this.#requests.size > 0)
      throw new TeleportError(ErrorCode.PROTOCOL, "UPLOAD_SWITCH with no upload taken, or requests open");
    this.#acceptedUpload = undefined;
    this.#connection.release();
    upload.receive(this.#stream, secret).then(
      (bytesReceived) => this.#onClose(undefined, bytesReceived),
      (err: unknown) => this.#onClose(toTeleportError(err)),
    );
  }
}
