/**
 * Framing: every frame is `[u32 length][u8 type][u32 requestId][body]`, where `length` counts the
 * bytes after itself. The decoder is incremental and copies each body byte at most once: small
 * bodies that arrive whole are passed as views of the socket's buffer, large bodies are assembled
 * into a buffer the sink provides (a pooled one for bulk data), and not copied at all when the
 * socket read them there itself (see `bodyRemainder`).
 */
import { ErrorCode, TeleportError } from "../errors.js";

export const FRAME_HEADER_SIZE = 9;
const LENGTH_FIELD_SIZE = 4;

/** Bodies at least this large are assembled into a sink-provided buffer. */
export const LARGE_BODY_THRESHOLD = 64 * 1024;

export interface FrameSink {
  /**
   * Called when a large frame's header has arrived, before its body; returns the buffer to
   * assemble it into (at least `bodyLength` bytes). Throws to refuse the frame.
   */
  allocateBody(type: number, requestId: number, bodyLength: number): Buffer;
  /** A complete frame. `body` is only valid during the call unless `owned` is true. */
  onFrame(type: number, requestId: number, body: Buffer, owned: boolean): void;
}

export function writeFrameHeader(
  target: Buffer,
  offset: number,
  type: number,
  requestId: number,
  bodyLength: number,
): void {
  target.writeUInt32LE(FRAME_HEADER_SIZE - LENGTH_FIELD_SIZE + bodyLength, offset);
  target[offset + 4] = type;
  target.writeUInt32LE(requestId, offset + 5);
}

export class FrameDecoder {
  readonly #sink: FrameSink;
  readonly #maxBodySize: number;
  readonly #header = Buffer.alloc(FRAME_HEADER_SIZE);
  #headerFilled = 0;
  #body: Buffer | null = null;
  #bodyFilled = 0;
  #bodyLength = 0;
  #type = 0;
  #requestId = 0;

  constructor(sink: FrameSink, maxBodySize: number) {
    this.#sink = sink;
    this.#maxBodySize = maxBodySize;
  }

  /** True when no partial frame is buffered (a clean place for the stream to end). */
  get idle(): boolean {
    return this.#headerFilled === 0 && this.#body === null;
  }

  /**
   * The rest of the body being assembled, for a socket to read into directly (a read that lands
   * there is pushed as that same view, and not copied); undefined between bodies.
   */
  bodyRemainder(): Buffer | undefined {
    return this.#body?.subarray(this.#bodyFilled, this.#bodyLength);
  }

  push(data: Buffer): void {
    let offset = 0;
    while (offset < data.length) {
      if (this.#body !== null) {
        offset = this.#fillBody(data, offset);
        continue;
      }
      const wanted = FRAME_HEADER_SIZE - this.#headerFilled;
      if (this.#headerFilled === 0 && data.length - offset >= FRAME_HEADER_SIZE) {
        this.#readHeader(data, offset);
        offset += FRAME_HEADER_SIZE;
      } else {
        const taken = Math.min(wanted, data.length - offset);
        data.copy(this.#header, this.#headerFilled, offset, offset + taken);
        this.#headerFilled += taken;
        offset += taken;
        if (this.#headerFilled < FRAME_HEADER_SIZE) return;
        this.#readHeader(this.#header, 0);
      }
      this.#headerFilled = 0;
      offset = this.#startBody(data, offset);
    }
  }

  #readHeader(source: Buffer, at: number): void {
    const length = source.readUInt32LE(at);
    if (length < FRAME_HEADER_SIZE - LENGTH_FIELD_SIZE) {
      throw new TeleportError(ErrorCode.PROTOCOL, `frame length ${length} is shorter than a header`);
    }
    this.#bodyLength = length - (FRAME_HEADER_SIZE - LENGTH_FIELD_SIZE);
    if (this.#bodyLength > this.#maxBodySize) {
      throw new TeleportError(
        ErrorCode.FRAME_TOO_LARGE,
        `frame of ${this.#bodyLength} bytes exceeds the ${this.#maxBodySize}-byte limit`,
      );
    }
    this.#type = source[at + 4] as number;
    this.#requestId = source.readUInt32LE(at + 5);
  }

  /** Delivers the body straight from `data` when it is all there and small, else starts assembling. */
  #startBody(data: Buffer, offset: number): number {
    const available = data.length - offset;
    if (this.#bodyLength < LARGE_BODY_THRESHOLD && available >= this.#bodyLength) {
      this.#sink.onFrame(
        this.#type,
        this.#requestId,
        data.subarray(offset, offset + this.#bodyLength),
        false,
      );
      return offset + this.#bodyLength;
    }
    this.#body =
      this.#bodyLength >= LARGE_BODY_THRESHOLD
        ? this.#sink.allocateBody(this.#type, this.#requestId, this.#bodyLength)
        : Buffer.allocUnsafe(this.#bodyLength);
    this.#bodyFilled = 0;
    return this.#fillBody(data, offset);
  }

  #fillBody(data: Buffer, offset: number): number {
    const body = this.#body as Buffer;
    const taken = Math.min(this.#bodyLength - this.#bodyFilled, data.length - offset);
    const inPlace =
      data.buffer === body.buffer && data.byteOffset + offset === body.byteOffset + this.#bodyFilled;
    if (!inPlace) data.copy(body, this.#bodyFilled, offset, offset + taken);
    this.#bodyFilled += taken;
    if (this.#bodyFilled === this.#bodyLength) {
      this.#body = null;
      this.#sink.onFrame(this.#type, this.#requestId, body.subarray(0, this.#bodyLength), true);
    }
    return offset + taken;
  }
}
