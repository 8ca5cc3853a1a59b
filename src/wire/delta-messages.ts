/**
 * The bodies of DELTA and DELTA_DATA (Feature.DELTA): a changed chunk asked for with the
 * signature of old bytes the client holds, answered with a script of copies and literal bytes
 * (src/delta). Kept apart from messages.ts, whose catalogue registers them.
 */
import {
  array,
  bytes,
  type Codec,
  fixedBytes,
  rest,
  struct,
  uint8,
  uint16,
  uint32,
  uint64,
  utf8,
} from "./codec.js";
import { HASH_SIZE, MAX_PATH_BYTES } from "./limits.js";

const hash = fixedBytes(HASH_SIZE);
const path = utf8(MAX_PATH_BYTES);

/** Chunks one DELTA request asks for, at most; and the largest chunk asked for as a delta. */
export const MAX_DELTA_ITEMS = 256;
export const MAX_DELTA_CHUNK_BYTES = 1024 * 1024;
/** Chunk bytes one DELTA request asks for in all, at most: the host's work per request is bounded. */
export const MAX_DELTA_REQUEST_BYTES = 16 * 1024 * 1024;
/** Largest signature of a DELTA item (src/delta/signature.ts: 2048 blocks of 12 bytes). */
export const MAX_DELTA_SIGNATURE_BYTES = 2048 * 12;
/** Largest script of a DELTA_DATA result (src/delta/script.ts: 4096 ops of 12 bytes). */
export const MAX_DELTA_OPS_BYTES = 4096 * 12;

/**
 * A chunk wanted as a delta: where the host finds it (as in ChunkRequest), and the signature of
 * `windowLength` old bytes in blocks of `blockSize` that its answer may copy from.
 */
export interface DeltaItem {
  hash: Buffer;
  size: number;
  path: string;
  offset: number;
  blockSize: number;
  windowLength: number;
  signature: Buffer;
}
export const deltaItemCodec: Codec<DeltaItem> = struct<DeltaItem>({
  hash,
  size: uint32,
  path,
  offset: uint64,
  blockSize: uint32,
  windowLength: uint32,
  signature: bytes(MAX_DELTA_SIGNATURE_BYTES),
});

export interface DeltaRequest {
  items: DeltaItem[];
}
export const deltaRequestCodec: Codec<DeltaRequest> = struct<DeltaRequest>({
  items: array(deltaItemCodec, MAX_DELTA_ITEMS),
});

/** How the host answers one DELTA item. */
export const DeltaStatus = {
  /** `ops` rebuild the chunk from the window and this frame's literal bytes. */
  SCRIPT: 0,
  /** The host does not have the chunk where it was asked (or will not delta it): fetch it whole. */
  UNAVAILABLE: 1,
} as const;

/** The answer to item `index` of the request. */
export interface DeltaResult {
  index: number;
  status: number;
  ops: Buffer;
}
export const deltaResultCodec: Codec<DeltaResult> = struct<DeltaResult>({
  index: uint16,
  status: uint8,
  ops: bytes(MAX_DELTA_OPS_BYTES),
});

/** Literal bytes as sent: raw, or one zstd frame of them. */
export const LiteralCoding = { RAW: 0, ZSTD: 1 } as const;

/**
 * DELTA_DATA: results for some items, then the literal runs of their scripts, in order, all
 * `literalBytes` of them (coded as `literalCoding` says) to the end of the frame.
 */
export interface DeltaData {
  results: DeltaResult[];
  literalBytes: number;
  literalCoding: number;
  literals: Buffer;
}
export const deltaDataCodec: Codec<DeltaData> = struct<DeltaData>({
  results: array(deltaResultCodec, MAX_DELTA_ITEMS),
  literalBytes: uint32,
  literalCoding: uint8,
  literals: rest,
});
