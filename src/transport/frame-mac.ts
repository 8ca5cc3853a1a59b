/**
 * Authenticated requests on plaintext streams. The secret's proof in HELLO stops a replay but not
 * a relay: a machine on the path can pass a stream's handshake through and then send requests of
 * its own on it. So every frame a client sends on a plaintext stream carries a MAC, under a key
 * that only the two ends of its control connection can make (the link's secret and that
 * connection's session binding, its TLS exporter value), derived anew for each stream and
 * counted by a sequence number: a relay can neither forge, change, replay nor reorder a request.
 * Frames from the host need none: they carry chunks, each checked against its hash.
 *
 * A MAC'd frame is the frame as ever with MAC_BYTES more body: HMAC-SHA256, truncated, over the
 * sequence number (u64), the type, the request id and the body.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { ErrorCode, TeleportError } from "../errors.js";
import { FRAME_HEADER_SIZE, writeFrameHeader } from "../wire/frame.js";
import { STREAM_KEY_ID_SIZE } from "../wire/messages.js";

export const MAC_BYTES = 16;
const CONTROL_KEY_LABEL = "teleport-stream-key/1";
const KEY_ID_LABEL = "teleport-stream-key-id/1";
const FRAME_KEY_LABEL = "teleport-frame-mac/1";

/** The key a control connection lends its plaintext streams, and the id they name it by. */
export interface StreamKey {
  key: Buffer;
  /** Sent in a plaintext stream's HELLO so the host finds the key (it says nothing of it). */
  keyId: Buffer;
}

/** The stream key of a control connection with session binding `controlBinding`. */
export function streamKey(secret: Buffer, controlBinding: Buffer): StreamKey {
  const key = createHmac("sha256", secret).update(CONTROL_KEY_LABEL).update(controlBinding).digest();
  const keyId = createHmac("sha256", key).update(KEY_ID_LABEL).digest().subarray(0, STREAM_KEY_ID_SIZE);
  return { key, keyId };
}

/** MACs of one plaintext stream's client frames, in order (both ends keep one). */
export class FrameMac {
  readonly #key: Buffer;
  #sequence = 0n;
  readonly #head = Buffer.alloc(8 + 1 + 4);

  /** For the stream whose own session binding is `streamBinding`. */
  constructor(key: StreamKey, streamBinding: Buffer) {
    this.#key = createHmac("sha256", key.key).update(FRAME_KEY_LABEL).update(streamBinding).digest();
  }

  /** The client's side: `frame` (made by encodeFrame) with its MAC appended. */
  seal(frame: Buffer): Buffer {
    const body = frame.subarray(FRAME_HEADER_SIZE);
    const type = frame[4] ?? 0;
    const requestId = frame.readUInt32LE(5);
    const sealed = Buffer.allocUnsafe(frame.length + MAC_BYTES);
    writeFrameHeader(sealed, 0, type, requestId, body.length + MAC_BYTES);
    body.copy(sealed, FRAME_HEADER_SIZE);
    this.#next(type, requestId, body).copy(sealed, frame.length);
    return sealed;
  }

  /** The host's side: the body of a MAC'd frame once its MAC is checked; throws AUTH if not. */
  open(type: number, requestId: number, sealedBody: Buffer): Buffer {
    if (sealedBody.length < MAC_BYTES) throw forged();
    const body = sealedBody.subarray(0, sealedBody.length - MAC_BYTES);
    const mac = sealedBody.subarray(body.length);
    if (!timingSafeEqual(mac, this.#next(type, requestId, body))) throw forged();
    return body;
  }

  #next(type: number, requestId: number, body: Buffer): Buffer {
    this.#head.writeBigUInt64LE(this.#sequence++, 0);
    this.#head[8] = type;
    this.#head.writeUInt32LE(requestId, 9);
    const mac = createHmac("sha256", this.#key).update(this.#head).update(body).digest();
    return mac.subarray(0, MAC_BYTES);
  }
}

function forged(): TeleportError {
  return new TeleportError(ErrorCode.AUTH, "a request on the unencrypted stream failed its MAC check");
}
