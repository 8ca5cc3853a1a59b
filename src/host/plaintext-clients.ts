/**
 * What a plaintext stream may be trusted with: the stream key of the control connection it names
 * (transport/frame-mac.ts), and the files that control connection was listed in manifests, the
 * only ones whose chunks the stream is served. A relay that got requests through would still
 * reach nothing the client was not pulling.
 *
 * Memory is bounded: a control connection's listed files up to MAX_LISTED_FILES (past that, its
 * plaintext streams are refused the files not remembered, with an error saying why), and one
 * record per authenticated TLS or QUIC connection that asked for Feature.FRAME_MAC.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import type { SendFrame } from "../serve/manifest-stream.js";
import { FrameMac, type StreamKey } from "../transport/frame-mac.js";
import type { Codec } from "../wire/codec.js";
import { decodeMessage } from "../wire/codec.js";
import { Feature, type FileBegin, fileBeginCodec, helloCodec } from "../wire/messages.js";

const MAX_LISTED_FILES = 1_000_000;

/** One control connection, as its plaintext streams see it. */
export class ControlSession {
  readonly key: StreamKey;
  readonly clientId: Buffer | undefined;
  readonly #listed = new Set<string>();
  #overflowed = false;

  constructor(key: StreamKey, clientId: Buffer | undefined) {
    this.key = key;
    this.clientId = clientId;
  }

  /** Remembers that the file at `path` was listed (its FILE_BEGIN sent). */
  listed(path: string): void {
    if (this.#listed.size < MAX_LISTED_FILES) this.#listed.add(path);
    else if (!this.#listed.has(path)) this.#overflowed = true;
  }

  /** Throws unless the file at `path` was listed to this control connection. */
  checkListed(path: string): void {
    if (this.#listed.has(path)) return;
    const why = this.#overflowed
      ? `more than ${MAX_LISTED_FILES} files were listed to this client; pull the rest encrypted`
      : "it was not listed to this client";
    throw new TeleportError(ErrorCode.AUTH, `"${path}" is not served over an unencrypted stream: ${why}`);
  }
}

/** A control connection's key, lent to its plaintext streams until `unregister`. */
export interface LentStreamKey {
  session: ControlSession;
  unregister: () => void;
}

/** A plaintext stream whose HELLO named its control connection: its requests' MACs. */
export interface AdmittedStream {
  frameMac: FrameMac;
  control: ControlSession;
}

/** The control connections of a host whose plaintext streams may name them, by key id. */
export class PlaintextClients {
  readonly #byKeyId = new Map<string, ControlSession>();

  /** Records a control connection, until the returned `unregister` (when it closes). */
  register(session: ControlSession): LentStreamKey {
    const id = session.key.keyId.toString("hex");
    this.#byKeyId.set(id, session);
    const unregister = () => {
      if (this.#byKeyId.get(id) === session) this.#byKeyId.delete(id);
    };
    return { session, unregister };
  }

  /**
   * The plaintext stream whose first frame's body (its HELLO, MAC'd: the caller checks the MAC
   * with the result) is `helloBody`, once the control connection it names is found open and the
   * same client's. Throws AUTH otherwise.
   */
  admit(helloBody: Buffer, streamBinding: Buffer): AdmittedStream {
    const hello = decodeMessage(helloCodec, helloBody);
    if ((hello.features & Feature.FRAME_MAC) === 0) {
      throw new TeleportError(
        ErrorCode.AUTH,
        "this host takes unencrypted streams only with authenticated requests (a newer teleport)",
      );
    }
    const control = this.#find(hello.streamKeyId, hello.clientId);
    if (control === undefined)
      throw new TeleportError(
        ErrorCode.AUTH,
        "the unencrypted stream names no open connection of its client",
      );
    return { frameMac: new FrameMac(control.key, streamBinding), control };
  }

  #find(keyId: Buffer | undefined, clientId: Buffer | undefined): ControlSession | undefined {
    const session = keyId === undefined ? undefined : this.#byKeyId.get(keyId.toString("hex"));
    if (session === undefined || clientId === undefined || session.clientId === undefined) return undefined;
    return session.clientId.equals(clientId) ? session : undefined;
  }
}

/** `send`, remembering in `control` the files it lists (their FILE_BEGIN). */
export function listingSender(send: SendFrame, control: ControlSession): SendFrame {
  return (type, codec, value) => {
    if (isFileBegin(codec, value)) control.listed(value.path);
    return send(type, codec, value);
  };
}

function isFileBegin(codec: Codec<unknown>, _value: unknown): _value is FileBegin {
  return codec === fileBeginCodec;
}
