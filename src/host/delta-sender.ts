/**
 * The host's side of DELTA (Feature.DELTA): each chunk asked for is read where the client says,
 * checked against its hash, and matched against the signature of the client's old bytes
 * (delta/match.ts); the scripts go back in DELTA_DATA frames, their literal runs zstd-compressed
 * together (source text, mostly). A chunk the host cannot find or will not delta is answered
 * UNAVAILABLE and the client fetches it whole, where GET_CHUNKS reports why.
 */
import { setImmediate } from "node:timers/promises";
import { hashBytes, hashEquals } from "../chunking/hash.js";
import { Compressor, compressBound } from "../compression/zstd.js";
import { matchBlocks } from "../delta/match.js";
import { encodeOps } from "../delta/script.js";
import { signatureProblem } from "../delta/signature.js";
import type { Connection } from "../engine/connection.js";
import { readAt } from "../engine/file-io.js";
import { ErrorCode, TeleportError } from "../errors.js";
import type { OpenFiles } from "../serve/open-files.js";
import {
  type DeltaItem,
  type DeltaResult,
  DeltaStatus,
  deltaDataCodec,
  LiteralCoding,
  MAX_DELTA_CHUNK_BYTES,
  MAX_DELTA_REQUEST_BYTES,
} from "../wire/delta-messages.js";
import { MessageType } from "../wire/messages.js";

/** Literal bytes gathered before a DELTA_DATA frame is sent (frames stay far below MAX_FRAME_BODY). */
const FRAME_LITERAL_BYTES = 1024 * 1024;
/** Chunk bytes matched between turns of the event loop. */
const YIELD_EVERY_BYTES = 1024 * 1024;
/** Literals shorter than this go raw: a zstd frame's header would eat the gain. */
const MIN_COMPRESSED_LITERALS = 64;
/** Text compresses well at a level this cheap; the literals of a tree's upgrade are a few MB. */
const LITERAL_LEVEL = 3;

/** The results and literal runs of one DELTA_DATA frame, being gathered. */
interface PendingFrame {
  results: DeltaResult[];
  literals: Buffer[];
  literalBytes: number;
}

export class DeltaSender {
  readonly #connection: Connection;
  readonly #openFiles: OpenFiles;
  #compressor: Compressor | undefined;
  #previous: Promise<void> = Promise.resolve();

  constructor(connection: Connection, openFiles: OpenFiles) {
    this.#connection = connection;
    this.#openFiles = openFiles;
  }

  /**
   * Answers a DELTA request once the connection's earlier ones are answered: one at a time, a
   * connection holds at most a frame of literals and a chunk however many it sends.
   */
  send(requestId: number, items: readonly DeltaItem[], signal: AbortSignal): Promise<void> {
    const answered = this.#previous.then(() => this.#answer(requestId, items, signal));
    this.#previous = answered.catch(() => {});
    return answered;
  }

  async #answer(requestId: number, items: readonly DeltaItem[], signal: AbortSignal): Promise<void> {
    const total = items.reduce((sum, item) => sum + item.size, 0);
    if (total > MAX_DELTA_REQUEST_BYTES)
      throw new TeleportError(ErrorCode.PROTOCOL, `DELTA of ${total} bytes, over ${MAX_DELTA_REQUEST_BYTES}`);
    let frame: PendingFrame = { results: [], literals: [], literalBytes: 0 };
    let matchedSinceYield = 0;
    for (const [index, item] of items.entries()) {
      if (matchedSinceYield >= YIELD_EVERY_BYTES) {
        // Reads here are synchronous: without this a request would hold the event loop (and every
        // other client's pings and chunks) until its last item.
        await setImmediate();
        matchedSinceYield = 0;
      }
      if (signal.aborted) return;
      matchedSinceYield += item.size;
      const data = await this.#readChunk(item);
      if (data === undefined) {
        frame.results.push({ index, status: DeltaStatus.UNAVAILABLE, ops: Buffer.alloc(0) });
        continue;
      }
      const delta = matchBlocks(data, {
        blockSize: item.blockSize,
        windowLength: item.windowLength,
        entries: item.signature,
      });
      frame.results.push({ index, status: DeltaStatus.SCRIPT, ops: encodeOps(delta.ops) });
      // Copied out, so that the chunk's buffer is not held until the frame is sent.
      frame.literals.push(Buffer.concat(delta.literals));
      frame.literalBytes += delta.literalBytes;
      if (frame.literalBytes >= FRAME_LITERAL_BYTES) {
        await this.#sendFrame(requestId, frame);
        frame = { results: [], literals: [], literalBytes: 0 };
      }
    }
    if (frame.results.length > 0 && !signal.aborted) await this.#sendFrame(requestId, frame);
  }

  /** The chunk's bytes, if the item is well-formed and the file holds them where it says. */
  async #readChunk(item: DeltaItem): Promise<Buffer | undefined> {
    const problem = signatureProblem({
      blockSize: item.blockSize,
      windowLength: item.windowLength,
      entries: item.signature,
    });
    if (problem !== undefined) throw new TeleportError(ErrorCode.PROTOCOL, `DELTA item: ${problem}`);
    if (item.size === 0 || item.size > MAX_DELTA_CHUNK_BYTES) return undefined;
    const data = Buffer.allocUnsafe(item.size);
    try {
      const read = await this.#openFiles.with(item.path, (fd) => readAt(fd, data, 0, item.size, item.offset));
      if (read !== item.size || !hashEquals(hashBytes(data), item.hash)) return undefined;
    } catch {
      return undefined; // not there, or not servable: GET_CHUNKS says why
    }
    return data;
  }

  async #sendFrame(requestId: number, frame: PendingFrame): Promise<void> {
    const raw =
      frame.literals.length === 1 ? (frame.literals[0] ?? Buffer.alloc(0)) : Buffer.concat(frame.literals);
    let literals = raw;
    let literalCoding: number = LiteralCoding.RAW;
    if (raw.length >= MIN_COMPRESSED_LITERALS) {
      this.#compressor ??= new Compressor();
      const compressed = Buffer.allocUnsafe(compressBound(raw.length));
      const length = this.#compressor.compress(compressed, raw, LITERAL_LEVEL);
      if (length < raw.length) {
        literals = compressed.subarray(0, length);
        literalCoding = LiteralCoding.ZSTD;
      }
    }
    this.#connection.send(MessageType.DELTA_DATA, requestId, deltaDataCodec, {
      results: frame.results,
      literalBytes: raw.length,
      literalCoding,
      literals,
    });
    await this.#connection.whenWritable();
  }
}
