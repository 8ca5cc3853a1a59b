/**
 * Compresses a group of CHUNK_DATA frames in place (the host lays a group out as back-to-back
 * frames, see HostSession): each chunk worth it becomes a CHUNK_ZSTD frame, the others stay as
 * they are, and the frames are moved down to close the gaps. Runs in the host's compression
 * threads; pure apart from the compressor, so it is tested directly.
 */
import { FRAME_HEADER_SIZE, writeFrameHeader } from "../wire/frame.js";
import { CHUNK_DATA_HEADER_SIZE, HASH_SIZE, MessageType } from "../wire/messages.js";
import { KEEP_RATIO, looksIncompressible } from "./compressible.js";
import { type Compressor, compressBound } from "./zstd.js";

const PREFIX = FRAME_HEADER_SIZE + CHUNK_DATA_HEADER_SIZE;

export interface FramesCompressed {
  /** Bytes of `frames` now in use, from the start. */
  length: number;
  /** Chunks sent compressed, and their bytes before and after. */
  compressedChunks: number;
  bytesIn: number;
  bytesOut: number;
}

/**
 * `frames[0, length)` holds CHUNK_DATA frames; `store[i]` set means frame i is sent as it is
 * (its file is of a compressed format). `scratch` is at least compressBound of the largest chunk.
 */
export function compressFrames(
  frames: Buffer,
  length: number,
  level: number,
  store: Uint8Array,
  compressor: Compressor,
  scratch: Buffer,
): FramesCompressed {
  const result: FramesCompressed = { length: 0, compressedChunks: 0, bytesIn: 0, bytesOut: 0 };
  const hash = Buffer.allocUnsafe(HASH_SIZE);
  let read = 0;
  let write = 0;
  for (let index = 0; read < length; index++) {
    const frameBytes = 4 + frames.readUInt32LE(read);
    const data = frames.subarray(read + PREFIX, read + frameBytes);
    let packed = 0;
    if (store[index] !== 1 && !looksIncompressible(data)) {
      if (scratch.length < compressBound(data.length)) throw new RangeError("compression scratch too small");
      packed = compressor.compress(scratch, data, level);
      if (packed > KEEP_RATIO * data.length) packed = 0;
    }
    if (packed === 0) {
      frames.copyWithin(write, read, read + frameBytes);
      write += frameBytes;
    } else {
      // The new frame may start inside the old one: the hash is saved before it is overwritten.
      frames.copy(hash, 0, read + FRAME_HEADER_SIZE, read + PREFIX);
      const requestId = frames.readUInt32LE(read + 5);
      writeFrameHeader(frames, write, MessageType.CHUNK_ZSTD, requestId, CHUNK_DATA_HEADER_SIZE + packed);
      hash.copy(frames, write + FRAME_HEADER_SIZE);
      scratch.copy(frames, write + PREFIX, 0, packed);
      write += PREFIX + packed;
      result.compressedChunks++;
      result.bytesIn += data.length;
      result.bytesOut += packed;
    }
    read += frameBytes;
  }
  result.length = write;
  return result;
}
