/**
 * The host's side of READ_RANGE: a byte range of one file as RANGE_DATA pieces, each with the
 * BLAKE3 hash of its bytes, sent as the request's credit allows.
 */
import { fstatSync } from "node:fs";
import { hashBytes } from "../chunking/hash.js";
import type { Connection } from "../engine/connection.js";
import type { CreditGate } from "../engine/credit.js";
import { readAt } from "../engine/file-io.js";
import { ErrorCode, TeleportError } from "../errors.js";
import type { OpenFiles } from "../serve/open-files.js";
import type { SendLeases } from "../serve/send-leases.js";
import { FRAME_HEADER_SIZE, writeFrameHeader } from "../wire/frame.js";
import {
  MessageType,
  RANGE_DATA_HEADER_SIZE,
  type ReadRangeRequest,
  rangeDataHeaderCodec,
} from "../wire/messages.js";

const RANGE_FRAME_PREFIX = FRAME_HEADER_SIZE + RANGE_DATA_HEADER_SIZE;
/** A range read is sent as hashed pieces of at most this size. */
const RANGE_PIECE_BYTES = 1024 * 1024;

export class RangeSender {
  readonly #connection: Connection;
  readonly #openFiles: OpenFiles;
  readonly #leases: SendLeases;

  constructor(connection: Connection, openFiles: OpenFiles, leases: SendLeases) {
    this.#connection = connection;
    this.#openFiles = openFiles;
    this.#leases = leases;
  }

  async send(
    requestId: number,
    { path, offset, length }: ReadRangeRequest,
    credit: CreditGate,
    signal: AbortSignal,
  ): Promise<void> {
    const size = await this.#openFiles.with(path, async (fd) => fstatSync(fd).size);
    if (offset + length > size) {
      throw new TeleportError(
        ErrorCode.RANGE,
        `range ${offset}+${length} is past the end of "${path}" (${size} bytes)`,
      );
    }
    let position = offset;
    const end = offset + length;
    while (position < end) {
      // Pieces are aligned to RANGE_PIECE_BYTES, so the same range is always hashed the same way.
      const pieceEnd = Math.min(end, (Math.floor(position / RANGE_PIECE_BYTES) + 1) * RANGE_PIECE_BYTES);
      const size = pieceEnd - position;
      await credit.take(RANGE_DATA_HEADER_SIZE + size, signal);
      const lease = await this.#leases.lease(RANGE_FRAME_PREFIX + size, signal);
      const frame = lease.frames;
      try {
        await this.#readExactly(
          path,
          frame.subarray(RANGE_FRAME_PREFIX, RANGE_FRAME_PREFIX + size),
          position,
        );
      } catch (err) {
        lease.release();
        throw err;
      }
      const data = frame.subarray(RANGE_FRAME_PREFIX);
      writeFrameHeader(frame, 0, MessageType.RANGE_DATA, requestId, RANGE_DATA_HEADER_SIZE + size);
      const header = { offset: position, hash: hashBytes(data) };
      rangeDataHeaderCodec.encode(
        { start: FRAME_HEADER_SIZE, end: RANGE_FRAME_PREFIX, buffer: frame },
        header,
      );
      this.#connection.sendOwnedFrame(frame, lease.release);
      position = pieceEnd;
      await this.#connection.whenWritable();
    }
  }

  async #readExactly(path: string, target: Buffer, position: number): Promise<void> {
    const bytesRead = await this.#openFiles.with(path, (fd) =>
      readAt(fd, target, 0, target.length, position),
    );
    if (bytesRead !== target.length) {
      throw new TeleportError(ErrorCode.FILE_CHANGED, `"${path}" is shorter than it was when listed`);
    }
  }
}
