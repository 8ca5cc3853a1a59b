/**
 * The QUIC transport: quinn (Rust) through the native binding that `@chainsafe/libp2p-quic`
 * ships per platform (`@chainsafe/libp2p-quic-linux-x64-gnu` 2.1.4, an optional dependency),
 * used directly, without libp2p. One QUIC connection per stream, as TCP has: the pull's pool
 * spreads over connections, each with its own congestion window. Where the binding is missing
 * (another platform) the transport says so, and `auto` uses TCP.
 *
 * Identity, with the same share link as TCP. The binding's TLS knows only libp2p identities
 * (an Ed25519 key per endpoint, mutual authentication, no certificate of ours, no exporter), so:
 * - The host's QUIC key is derived from its master secret, and its X.509 key (the one the
 *   link's fingerprint pins) signs it. The host sends that certificate and signature first on
 *   every stream; the client checks the certificate against the fingerprint, the signature, and
 *   that the key is the one QUIC's handshake just proved the host holds. (The binding checks
 *   no server identity by itself: this check is what stops an impostor.)
 * - For the secret proof, both ends send a fresh nonce; the session binding is a hash of both
 *   nonces and both endpoints' keys. A relay between two QUIC sessions shows different keys on
 *   each, so a proof cannot be carried from one session to another.
 */
import {
  createHash,
  createHmac,
  createPrivateKey,
  type KeyObject,
  randomBytes,
  sign,
  timingSafeEqual,
  verify,
  X509Certificate,
} from "node:crypto";
import { createRequire } from "node:module";
import { Duplex } from "node:stream";
import { ErrorCode, TeleportError } from "../errors.js";
import type { HostIdentity } from "./identity.js";
import type { ShareLink } from "./link.js";
import { HANDSHAKE_TIMEOUT_MS } from "./tcp.js";
import type { DialOptions, Listener, ListenOptions, Transport, TransportStream } from "./transport.js";

/** The parts of the quinn binding teleport uses (it ships no types). */
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
interface QuinnServer {
  port(): number;
  inboundConnection(): Promise<QuinnConnection>;
  abort(): Promise<void>;
}
interface QuinnClient {
  outboundConnection(ip: string, port: number): Promise<QuinnConnection>;
  abort(): void;
}
interface QuinnConnection {
  outboundStream(): Promise<QuinnStream>;
  inboundStream(): Promise<QuinnStream>;
  /** "/ip4/ADDRESS/udp/PORT/quic-v1/p2p/PEER-ID" */
  remoteMultiaddr(): string;
  closed(): Promise<void>;
  abort(): void;
  rtt(): number;
}
interface QuinnStream {
  /** Resolves once the bytes are taken (flow control permitting); one write at a time. */
  write(data: Uint8Array): Promise<void>;
  /** At most `maxLength` bytes, null at the end; one read at a time. */
  read(maxLength: number): Promise<Uint8Array | null>;
  finishWrite(): Promise<void>;
}

/**
 * A quinn connection used the careful way: `closed()` is awaited once and shared, `abort()` runs
 * at most once and never after the close, and the RTT is not asked of a closed connection. A
 * precaution (the binding is undocumented, and a Rust panic aborts the process): the crashes
 * seen over netsim came from thread teardown, which shutdownQuic fixed.
 */
class Conn {
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
 * Closes this thread's QUIC connections and its dialling endpoint, and waits until they are
 * gone. A worker thread calls it before it exits: the binding crashes the process (SIGSEGV or
 * abort, in 4 of 9 pulls) if a thread's environment is torn down under live QUIC state.
 */
export async function shutdownQuic(): Promise<void> {
  const closing = [...live];
  for (const connection of closing) connection.abort();
  await Promise.all(closing.map((connection) => connection.closed));
  dialer?.client.abort();
  dialer = undefined;
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
/** Reads of the binding allocate their length whatever arrives: 64 KiB ran as fast as 1 MiB. */
const READ_BYTES = 64 * 1024;
/** Queued writes up to this size are sent together (a manifest's small frames). */
const GATHER_BYTES = 256 * 1024;
/** How long the side that ended first waits for the other to close the connection. */
const LINGER_MS = 2000;
const MAX_CONNECTIONS = 4096;
const ACCEPTS_WAITING = 16;

const PREAMBLE_MAGIC = Buffer.from("TPQ1");
const NONCE_BYTES = 32;
const ENDORSEMENT_LABEL = Buffer.from("teleport quic host key\0");
const BINDING_LABEL = Buffer.from("teleport quic session\0");
/** The largest certificate or signature a host may send in its preamble. */
const MAX_PREAMBLE_FIELD = 8192;
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

function quinnConfig(key: Ed25519Key): unknown {
  return new (quinn as Quinn).QuinnConfig({
    privateKeyProto: key.proto,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    maxIdleTimeout: IDLE_TIMEOUT_MS,
    keepAliveInterval: IDLE_TIMEOUT_MS / 3,
    maxConcurrentStreamLimit: 4,
    // The binding's defaults; far larger windows measured slower (180-210 against ~370 MB/s).
    maxStreamData: 10_000_000,
    maxConnectionData: 15_000_000,
    receiveBufferSize: 4 * 1024 * 1024,
    sendBufferSize: 4 * 1024 * 1024,
    shutdownTimeout: 1000,
  });
}

interface Ed25519Key {
  /** libp2p's PrivateKey protobuf: key type Ed25519, then the seed and the public key. */
  proto: Buffer;
  publicKey: Buffer;
}

function ed25519Key(seed: Buffer): Ed25519Key {
  const privateKey: KeyObject = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
    format: "der",
    type: "pkcs8",
  });
  const publicKey = Buffer.from(privateKey.export({ format: "jwk" }).x as string, "base64url");
  return { proto: Buffer.concat([Buffer.from([0x08, 0x01, 0x12, 0x40]), seed, publicKey]), publicKey };
}

/** The Ed25519 public key in a libp2p peer id ("12D3KooW..."), from a multiaddr's /p2p/ part. */
function peerKey(multiaddr: string): Buffer {
  const id = multiaddr.split("/p2p/")[1] ?? "";
  const bytes = base58Decode(id);
  const prefix = Buffer.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]); // identity multihash, Ed25519
  if (bytes?.length !== prefix.length + 32 || !bytes.subarray(0, prefix.length).equals(prefix)) {
    throw new TeleportError(ErrorCode.PROTOCOL, `peer identity ${JSON.stringify(id)} is not an Ed25519 key`);
  }
  return bytes.subarray(prefix.length);
}

/** "/ip4/1.2.3.4/udp/5/..." -> its address and port. */
function peerAddress(multiaddr: string): { address: string; port: number } {
  const parts = multiaddr.split("/");
  return { address: parts[2] ?? "", port: Number(parts[4] ?? 0) };
}

const BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

function base58Decode(text: string): Buffer | undefined {
  let value = 0n;
  for (const char of text) {
    const digit = BASE58.indexOf(char);
    if (digit < 0) return undefined;
    value = value * 58n + BigInt(digit);
  }
  const hex = value === 0n ? "" : value.toString(16);
  let zeros = 0;
  while (text[zeros] === "1") zeros++;
  return Buffer.concat([Buffer.alloc(zeros), Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, "hex")]);
}

function sessionBinding(hostKey: Buffer, clientKey: Buffer, clientNonce: Buffer, hostNonce: Buffer): Buffer {
  return createHash("sha256")
    .update(BINDING_LABEL)
    .update(hostKey)
    .update(clientKey)
    .update(clientNonce)
    .update(hostNonce)
    .digest();
}

/**
 * The binding's promises do not keep Node's event loop alive (a socket does), so a process
 * waiting only on a QUIC read would exit. Each open stream and listener holds it open instead.
 */
let holders = 0;
let holdTimer: NodeJS.Timeout | undefined;

function holdEventLoop(): () => void {
  if (holders++ === 0) holdTimer = setInterval(() => {}, 1 << 30);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--holders === 0) clearInterval(holdTimer);
  };
}

/** This thread's QUIC endpoint for dialling, with a key of its own; made on first use. */
let dialer: { client: QuinnClient; key: Ed25519Key } | undefined;

function clientEndpoint(): { client: QuinnClient; key: Ed25519Key } {
  if (quinn === undefined) throw unavailable();
  if (dialer === undefined) {
    const key = ed25519Key(randomBytes(32));
    dialer = { client: new quinn.Client(quinnConfig(key), 0), key };
  }
  return dialer;
}

function unavailable(): TeleportError {
  return new TeleportError(
    ErrorCode.UNAVAILABLE,
    `QUIC is not available on ${process.platform}-${process.arch} (its native binding is not installed)`,
  );
}

/** The binding's errors carry only a message. */
function quicError(err: unknown, context: string): TeleportError {
  if (err instanceof TeleportError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const code = /timed out/i.test(message) ? ErrorCode.TIMEOUT : ErrorCode.CONNECTION;
  return new TeleportError(code, `${context}: ${message}`);
}

/** Reads exactly `length` bytes from a stream not yet wrapped (a preamble). */
async function readExactly(stream: QuinnStream, length: number): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  let have = 0;
  while (have < length) {
    const part = await stream.read(length - have);
    if (part === null) throw new TeleportError(ErrorCode.CONNECTION, "stream ended during the QUIC preamble");
    parts.push(part);
    have += part.length;
  }
  return Buffer.concat(parts);
}

/** `work`, or a TIMEOUT after `ms`; what `work` gives too late goes to `onLate`. */
function withTimeout<T>(work: Promise<T>, ms: number, what: string, onLate: (value: T) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new TeleportError(ErrorCode.TIMEOUT, `${what}: nothing within ${ms} ms`));
    }, ms);
    work.then(
      (value) => {
        clearTimeout(timer);
        if (late) onLate(value);
        else resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        if (!late) reject(err);
      },
    );
  });
}

/**
 * The host's preamble: its certificate (DER), its X.509 key's signature over its QUIC key, and
 * its nonce, each length-prefixed (u16) but the nonce.
 */
interface HostPreamble {
  certificate: Buffer;
  signature: Buffer;
  nonce: Buffer;
}

function encodeHostPreamble({ certificate, signature, nonce }: HostPreamble): Buffer {
  const lengths = Buffer.alloc(4);
  lengths.writeUInt16LE(certificate.length, 0);
  lengths.writeUInt16LE(signature.length, 2);
  return Buffer.concat([PREAMBLE_MAGIC, lengths, certificate, signature, nonce]);
}

async function readHostPreamble(stream: QuinnStream): Promise<HostPreamble> {
  const head = await readExactly(stream, PREAMBLE_MAGIC.length + 4);
  if (!head.subarray(0, PREAMBLE_MAGIC.length).equals(PREAMBLE_MAGIC))
    throw new TeleportError(ErrorCode.PROTOCOL, "not a teleport host (QUIC preamble)");
  const certificateLength = head.readUInt16LE(PREAMBLE_MAGIC.length);
  const signatureLength = head.readUInt16LE(PREAMBLE_MAGIC.length + 2);
  if (certificateLength > MAX_PREAMBLE_FIELD || signatureLength > MAX_PREAMBLE_FIELD)
    throw new TeleportError(ErrorCode.PROTOCOL, "QUIC preamble fields too large");
  const rest = await readExactly(stream, certificateLength + signatureLength + NONCE_BYTES);
  return {
    certificate: rest.subarray(0, certificateLength),
    signature: rest.subarray(certificateLength, certificateLength + signatureLength),
    nonce: rest.subarray(certificateLength + signatureLength),
  };
}

/**
 * The host is the link's host only if its certificate is the pinned one, and that certificate's
 * key signed the QUIC key the handshake proved the host holds.
 */
function checkEndorsement(link: ShareLink, preamble: HostPreamble, hostKey: Buffer): void {
  const fingerprint = createHash("sha256").update(preamble.certificate).digest();
  let endorsed = false;
  if (fingerprint.length === link.fingerprint.length && timingSafeEqual(fingerprint, link.fingerprint)) {
    try {
      const certificate = new X509Certificate(preamble.certificate);
      const signed = Buffer.concat([ENDORSEMENT_LABEL, hostKey]);
      endorsed = verify("sha256", signed, certificate.publicKey, preamble.signature);
    } catch {
      endorsed = false;
    }
  }
  if (!endorsed) {
    throw new TeleportError(
      ErrorCode.FINGERPRINT,
      `host ${link.host}:${link.port} presented an identity that does not match the link`,
    );
  }
}

async function dial(link: ShareLink, options: DialOptions = {}): Promise<TransportStream> {
  const { client, key } = clientEndpoint();
  const timeoutMs = options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const where = `${link.host}:${link.port}`;
  const started = performance.now();
  const connecting = client.outboundConnection(link.host, link.port).catch((err: unknown) => {
    throw quicError(err, `QUIC to ${where}`);
  });
  const connection = new Conn(
    await withTimeout(connecting, timeoutMs, `QUIC handshake with ${where}`, (late) =>
      new Conn(late).abort(),
    ),
  );
  const handshakeMs = performance.now() - started;
  const abort = () => connection.abort();
  options.signal?.addEventListener("abort", abort, { once: true });
  try {
    const stream = await connection.raw.outboundStream();
    const clientNonce = randomBytes(NONCE_BYTES);
    await stream.write(Buffer.concat([PREAMBLE_MAGIC, clientNonce]));
    const left = Math.max(1, timeoutMs - (performance.now() - started));
    const preamble = await withTimeout(
      readHostPreamble(stream),
      left,
      `QUIC preamble from ${where}`,
      () => {},
    );
    const hostKey = peerKey(connection.raw.remoteMultiaddr());
    checkEndorsement(link, preamble, hostKey);
    const binding = sessionBinding(hostKey, key.publicKey, clientNonce, preamble.nonce);
    return new QuicStream(connection, stream, binding, { address: link.host, port: link.port }, handshakeMs);
  } catch (err) {
    connection.abort();
    if (options.signal?.aborted) throw new TeleportError(ErrorCode.CANCELLED, "connect cancelled");
    throw quicError(err, `QUIC to ${where}`);
  } finally {
    options.signal?.removeEventListener("abort", abort);
  }
}

async function listen(
  identity: HostIdentity,
  bind: { host: string; port: number },
  onStream: (stream: TransportStream) => void,
  options: ListenOptions = {},
): Promise<Listener> {
  if (quinn === undefined) throw unavailable();
  const seed = createHmac("sha256", identity.masterSecret).update("teleport quic key").digest();
  const key = ed25519Key(seed);
  const certificate = new X509Certificate(identity.certPem).raw;
  const signature = sign("sha256", Buffer.concat([ENDORSEMENT_LABEL, key.publicKey]), identity.keyPem);
  let server: QuinnServer;
  try {
    server = new quinn.Server(quinnConfig(key), bind.host, bind.port);
  } catch (err) {
    throw quicError(err, `listening on UDP ${bind.host}:${bind.port}`);
  }
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const open = new Set<QuicStream>();
  const release = holdEventLoop();
  let connections = 0;
  let closing = false;

  const accept = async (raw: QuinnConnection) => {
    const connection = new Conn(raw);
    connections++;
    connection.closed.then(() => connections--);
    if (connections > MAX_CONNECTIONS) return connection.abort();
    try {
      const start = async () => {
        const stream = await raw.inboundStream();
        const hello = await readExactly(stream, PREAMBLE_MAGIC.length + NONCE_BYTES);
        if (!hello.subarray(0, PREAMBLE_MAGIC.length).equals(PREAMBLE_MAGIC))
          throw new TeleportError(ErrorCode.PROTOCOL, "not a teleport client (QUIC preamble)");
        const nonce = randomBytes(NONCE_BYTES);
        await stream.write(encodeHostPreamble({ certificate, signature, nonce }));
        const clientNonce = hello.subarray(PREAMBLE_MAGIC.length);
        const remote = raw.remoteMultiaddr();
        const clientKey = peerKey(remote);
        const binding = sessionBinding(key.publicKey, clientKey, clientNonce, nonce);
        return new QuicStream(connection, stream, binding, peerAddress(remote), undefined);
      };
      const stream = await withTimeout(start(), handshakeTimeoutMs, "QUIC preamble", (late) =>
        late.destroy(),
      );
      if (closing) return stream.destroy();
      open.add(stream);
      stream.once("close", () => open.delete(stream));
      onStream(stream);
    } catch {
      connection.abort(); // scanners, wrong protocol, slow clients: their problem, not ours
    }
  };

  // Several accepts wait at once: the binding resolves one only when its handshake is done, so
  // a single loop let one slow or lost handshake hold every other client back.
  const acceptLoop = async () => {
    for (;;) {
      let connection: QuinnConnection;
      try {
        connection = await server.inboundConnection();
      } catch {
        return; // the server was closed
      }
      void accept(connection);
    }
  };
  const accepting = Promise.all(Array.from({ length: ACCEPTS_WAITING }, acceptLoop));

  return {
    transport: "quic",
    host: bind.host,
    port: server.port(),
    async close() {
      closing = true;
      await server.abort();
      await accepting;
      release();
      await Promise.all(
        [...open].map((stream) => new Promise<void>((resolve) => stream.once("close", () => resolve()))),
      );
    },
  };
}

/**
 * A QUIC stream as a Node Duplex (and a TransportStream), ending as a TLS socket does: when the
 * peer ends, this side ends too once its queue is written (no half-open streams). The
 * connection carries only this stream, so closing one closes the other: the side that reads
 * the peer's end after ending its own knows both directions are delivered, and closes the
 * connection; the other waits for that (at most LINGER_MS), since closing at once could drop
 * its last bytes still in flight.
 */
class QuicStream extends Duplex implements TransportStream {
  readonly transport = "quic" as const;
  readonly encrypted = true;
  readonly stream: Duplex = this;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly #connection: Conn;
  readonly #quic: QuinnStream;
  readonly #binding: Buffer;
  readonly #handshakeMs: number | undefined;
  #reading = false;
  #writeFinished = false;
  #readEnded = false;
  #bytesSent = 0;
  #bytesReceived = 0;
  readonly #release = holdEventLoop();

  constructor(
    connection: Conn,
    quic: QuinnStream,
    binding: Buffer,
    remote: { address: string; port: number },
    handshakeMs: number | undefined,
  ) {
    super({ allowHalfOpen: false, writableHighWaterMark: 1024 * 1024 });
    this.#connection = connection;
    this.#quic = quic;
    this.#binding = binding;
    this.#handshakeMs = handshakeMs;
    this.remoteAddress = remote.address;
    this.remotePort = remote.port;
    connection.closed.then(() => this.#connectionClosed());
    this.once("close", this.#release);
  }

  sessionBinding(): Buffer {
    return Buffer.from(this.#binding);
  }

  stats() {
    const rttMs = this.#connection.rtt() ?? this.#handshakeMs;
    return { rttMs, bytesSent: this.#bytesSent, bytesReceived: this.#bytesReceived };
  }

  #connectionClosed(): void {
    if (this.destroyed) return;
    const graceful = this.#readEnded && this.#writeFinished;
    this.destroy(graceful ? undefined : new TeleportError(ErrorCode.CONNECTION, "QUIC connection closed"));
  }

  override _read(): void {
    if (!this.#reading) void this.#pump();
  }

  async #pump(): Promise<void> {
    this.#reading = true;
    try {
      for (;;) {
        const data = await this.#quic.read(READ_BYTES);
        if (data === null) {
          this.#readEnded = true;
          // Both directions delivered: the peer waits for this side to close the connection.
          if (this.#writeFinished) this.#connection.abort();
          this.push(null);
          return;
        }
        this.#bytesReceived += data.length;
        if (!this.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength))) return;
      }
    } catch (err) {
      this.destroy(quicError(err, "QUIC stream"));
    } finally {
      this.#reading = false;
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#send(chunk).then(() => callback(), callback);
  }

  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    callback: (error?: Error | null) => void,
  ): void {
    void (async () => {
      let gathered: Buffer[] = [];
      let gatheredBytes = 0;
      // A lone chunk (a 2 MiB group of frames, say) goes as it is, never copied.
      const flush = () => {
        const data = gathered.length === 1 ? (gathered[0] as Buffer) : Buffer.concat(gathered, gatheredBytes);
        gathered = [];
        gatheredBytes = 0;
        return this.#send(data);
      };
      for (const { chunk } of chunks) {
        if (gatheredBytes + chunk.length > GATHER_BYTES && gathered.length > 0) await flush();
        gathered.push(chunk);
        gatheredBytes += chunk.length;
      }
      if (gathered.length > 0) await flush();
    })().then(() => callback(), callback);
  }

  async #send(data: Buffer): Promise<void> {
    try {
      await this.#quic.write(data);
    } catch (err) {
      throw quicError(err, "QUIC stream");
    }
    this.#bytesSent += data.length;
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#quic.finishWrite().then(
      () => {
        this.#writeFinished = true;
        callback();
        // The peer's end may be waiting behind data no one reads: read on to find it.
        if (!this.#reading && !this.#readEnded) void this.#pump();
      },
      (err: unknown) => callback(quicError(err, "QUIC stream")),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (error === null && this.#readEnded && this.#writeFinished) {
      const timer = setTimeout(() => this.#connection.abort(), LINGER_MS);
      this.#connection.closed.finally(() => {
        clearTimeout(timer);
        callback(null);
      });
      return;
    }
    this.#connection.abort();
    callback(error);
  }
}

export const quicTransport: Transport = { kind: "quic", dial, listen };
