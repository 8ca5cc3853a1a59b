/**
 * The wire's hot paths. Codecs: the largest CHUNKS (a manifest batch) and GET_CHUNKS (a fetch
 * request) messages a pull sends in bulk, encoded into frames as the connection does and decoded
 * from frame bodies as the sessions do. Framing: FrameDecoder fed a 16 MiB stream of 1 MiB
 * CHUNK_DATA frames in 16 KiB pieces, the most plaintext one TLS record delivers.
 */
import { randomBytes } from "node:crypto";
import { encodeFrame } from "../../src/engine/connection.js";
import { type Codec, decodeMessage } from "../../src/wire/codec.js";
import { FRAME_HEADER_SIZE, FrameDecoder, type FrameSink, writeFrameHeader } from "../../src/wire/frame.js";
import {
  CHUNK_DATA_HEADER_SIZE,
  type ChunkRef,
  type ChunkRequest,
  type Chunks,
  chunksCodec,
  type GetChunksRequest,
  getChunksRequestCodec,
  HASH_SIZE,
  MAX_CHUNKS_PER_REQUEST,
  MAX_FRAME_BODY,
  MessageType,
} from "../../src/wire/messages.js";
import { KIB, type MicroTask, type TaskGroup } from "./task.js";

export const FRAME_DECODE = "frame decode 16 MiB";

const ITEMS = MAX_CHUNKS_PER_REQUEST;
const STREAM_CHUNKS = 16;
/** A large chunk, as the wire carries them (the codec cost does not depend on the size). */
const CHUNK_BYTES = 1024 * 1024;
const TLS_RECORD_PLAINTEXT = 16 * KIB;
const REQUEST_ID = 7;

export function prepareWireTasks(): TaskGroup {
  const refs: Chunks = {
    chunks: Array.from(
      { length: ITEMS },
      (_, i): ChunkRef => ({
        offset: i * CHUNK_BYTES,
        size: CHUNK_BYTES,
        hash: randomBytes(HASH_SIZE),
      }),
    ),
  };
  // A request spans several files, as a pull's batches do; 16 chunks per file.
  const request: GetChunksRequest = {
    chunks: Array.from(
      { length: ITEMS },
      (_, i): ChunkRequest => ({
        hash: randomBytes(HASH_SIZE),
        size: CHUNK_BYTES,
        path: `datasets/run-${String(i >> 4).padStart(3, "0")}/samples.bin`,
        offset: (i % 16) * CHUNK_BYTES,
      }),
    ),
  };
  return {
    tasks: [
      ...codecTasks("CHUNKS", MessageType.CHUNKS, chunksCodec, refs, `${ITEMS} chunk refs`),
      ...codecTasks(
        "GET_CHUNKS",
        MessageType.GET_CHUNKS,
        getChunksRequestCodec,
        request,
        `${ITEMS} chunk requests`,
      ),
      frameDecoderTask(),
    ],
  };
}

function codecTasks<T extends { chunks: unknown[] }>(
  label: string,
  type: number,
  codec: Codec<T>,
  message: T,
  contents: string,
): MicroTask[] {
  const frame = encodeFrame(type, REQUEST_ID, codec, message);
  const body = frame.subarray(FRAME_HEADER_SIZE);
  const decoded = decodeMessage(codec, body);
  if (decoded.chunks.length !== message.chunks.length) throw new Error(`${label} does not round-trip`);
  return [
    {
      name: `${label} encode`,
      operation: `encodeFrame of a ${label} message of ${contents} (${frame.length} bytes)`,
      role: "subject",
      bytesPerOp: null,
      run: () => encodeFrame(type, REQUEST_ID, codec, message),
    },
    {
      name: `${label} decode`,
      operation: `decodeMessage of a ${label} body of ${contents} (${body.length} bytes)`,
      role: "subject",
      bytesPerOp: null,
      run: () => decodeMessage(codec, body),
    },
  ];
}

/** Counts what it is given; large bodies land in one preallocated buffer, as in a buffer pool. */
class CountingSink implements FrameSink {
  readonly #target = Buffer.allocUnsafe(MAX_FRAME_BODY);
  frames = 0;
  bodyBytes = 0;

  allocateBody(): Buffer {
    return this.#target;
  }

  onFrame(type: number, _requestId: number, body: Buffer): void {
    if (type !== MessageType.CHUNK_DATA) throw new Error(`unexpected frame type ${type}`);
    this.frames++;
    this.bodyBytes += body.length;
  }
}

function frameDecoderTask(): MicroTask {
  const bodyLength = CHUNK_DATA_HEADER_SIZE + CHUNK_BYTES;
  const frameLength = FRAME_HEADER_SIZE + bodyLength;
  const stream = randomBytes(STREAM_CHUNKS * frameLength);
  for (let i = 0; i < STREAM_CHUNKS; i++) {
    writeFrameHeader(stream, i * frameLength, MessageType.CHUNK_DATA, REQUEST_ID, bodyLength);
  }
  // 16 KiB pieces do not divide a frame, so headers straddle pieces as they do off a socket.
  const pieces: Buffer[] = [];
  for (let at = 0; at < stream.length; at += TLS_RECORD_PLAINTEXT) {
    pieces.push(stream.subarray(at, at + TLS_RECORD_PLAINTEXT));
  }
  const sink = new CountingSink();
  const decoder = new FrameDecoder(sink, MAX_FRAME_BODY);
  const decodeStream = () => {
    for (const piece of pieces) decoder.push(piece);
  };
  decodeStream();
  if (sink.frames !== STREAM_CHUNKS || sink.bodyBytes !== STREAM_CHUNKS * bodyLength || !decoder.idle) {
    throw new Error(`FrameDecoder delivered ${sink.frames} frames of ${sink.bodyBytes} bytes`);
  }
  return {
    name: FRAME_DECODE,
    operation: `FrameDecoder.push of ${STREAM_CHUNKS} CHUNK_DATA frames of 1 MiB in 16 KiB pieces`,
    role: "subject",
    bytesPerOp: stream.length,
    run: decodeStream,
  };
}
