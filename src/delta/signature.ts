/**
 * The rsync-style signature of a file's old bytes: for each block, a weak rolling checksum that
 * can be slid along new bytes one byte at a time, and a short strong hash that confirms a weak
 * match. The client signs a window of its old copy; the host finds those blocks in a chunk's new
 * bytes (match.ts); the client rebuilds the chunk from its old bytes and the literal runs
 * (rebuild.ts) and checks it against the chunk's BLAKE3 hash, so a weak or short hash that
 * matches by accident costs a refetch, never a wrong byte.
 */
/**
 * Bytes of the strong hash per block: two 32-bit multiplicative hashes (FNV-1a and a murmur-style
 * one). Not cryptographic, and need not be: a block that matches by accident only makes the
 * rebuilt chunk fail its BLAKE3 check, and it is fetched whole. A BLAKE3 call per block cost
 * four times as much (docs/decisions.md).
 */
export const STRONG_HASH_BYTES = 8;
/** Bytes per block in a signature: the weak checksum (u32 LE), then the strong hash. */
export const SIGNATURE_ENTRY_BYTES = 4 + STRONG_HASH_BYTES;
/** Smallest and largest block; between them a block is about the square root of the window, as rsync's. */
export const MIN_BLOCK_BYTES = 512;
export const MAX_BLOCK_BYTES = 8 * 1024;
/** Blocks one signature holds at most: what a host is asked to index per chunk is bounded. */
export const MAX_SIGNATURE_BLOCKS = 2048;
/** Old bytes one signature covers at most. */
export const MAX_WINDOW_BYTES = MAX_SIGNATURE_BLOCKS * MAX_BLOCK_BYTES;

/** A signature of `windowLength` old bytes in blocks of `blockSize` (the last one may be shorter). */
export interface Signature {
  blockSize: number;
  windowLength: number;
  /** SIGNATURE_ENTRY_BYTES per block. */
  entries: Buffer;
}

/** The block size for a window of `length` bytes: ~sqrt(length), a multiple of 64, clamped. */
export function blockSizeFor(length: number): number {
  const root = Math.ceil(Math.sqrt(length) / 64) * 64;
  const fewEnough = Math.ceil(length / MAX_SIGNATURE_BLOCKS);
  return Math.min(MAX_BLOCK_BYTES, Math.max(MIN_BLOCK_BYTES, root, fewEnough));
}

export function blockCount(windowLength: number, blockSize: number): number {
  return Math.ceil(windowLength / blockSize);
}

/** The weak checksum of `data[start, end)`: rsync's two 16-bit sums, packed. */
export function weakChecksum(data: Uint8Array, start: number, end: number): number {
  let a = 0;
  let b = 0;
  for (let i = start; i < end; i++) {
    a = (a + (data[i] ?? 0)) | 0;
    b = (b + a) | 0;
  }
  return packWeak(a, b);
}

export function packWeak(a: number, b: number): number {
  return ((a & 0xffff) | ((b & 0xffff) << 16)) >>> 0;
}

/** The strong hash of `data[start, end)` into `out` (two words, as a signature entry holds them). */
export function strongHash(data: Uint8Array, start: number, end: number, out: Uint32Array): void {
  let fnv = 0x811c9dc5 ^ (end - start);
  let murmur = 0x9747b28c;
  for (let i = start; i < end; i++) {
    const byte = data[i] ?? 0;
    fnv = Math.imul(fnv ^ byte, 0x01000193);
    murmur = Math.imul(murmur ^ byte, 0x5bd1e995);
    murmur ^= murmur >>> 15;
  }
  out[0] = finalMix(fnv);
  out[1] = finalMix(murmur);
}

/**
 * A block's signature entry at `at`: the weak checksum and the strong hash in one pass over its
 * bytes (signing is the client's main-thread work for a delta; two passes cost a third more).
 */
function signBlock(data: Uint8Array, start: number, end: number, entries: Buffer, at: number): void {
  let a = 0;
  let b = 0;
  let fnv = 0x811c9dc5 ^ (end - start);
  let murmur = 0x9747b28c;
  for (let i = start; i < end; i++) {
    const byte = data[i] ?? 0;
    a = (a + byte) | 0;
    b = (b + a) | 0;
    fnv = Math.imul(fnv ^ byte, 0x01000193);
    murmur = Math.imul(murmur ^ byte, 0x5bd1e995);
    murmur ^= murmur >>> 15;
  }
  entries.writeUInt32LE(packWeak(a, b), at);
  entries.writeUInt32LE(finalMix(fnv), at + 4);
  entries.writeUInt32LE(finalMix(murmur), at + 8);
}

/** murmur3's finaliser: every input bit reaches every output bit. */
function finalMix(value: number): number {
  let h = value;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Signs `window` (old bytes) in blocks of `blockSize`. */
export function sign(window: Uint8Array, blockSize = blockSizeFor(window.length)): Signature {
  const count = blockCount(window.length, blockSize);
  const entries = Buffer.allocUnsafe(count * SIGNATURE_ENTRY_BYTES);
  for (let block = 0; block < count; block++) {
    const start = block * blockSize;
    signBlock(
      window,
      start,
      Math.min(window.length, start + blockSize),
      entries,
      block * SIGNATURE_ENTRY_BYTES,
    );
  }
  return { blockSize, windowLength: window.length, entries };
}

/** Checks a signature's shape (from the network): sizes in range, one entry per block. */
export function signatureProblem(signature: Signature): string | undefined {
  const { blockSize, windowLength, entries } = signature;
  if (blockSize < MIN_BLOCK_BYTES || blockSize > MAX_BLOCK_BYTES)
    return `block size ${blockSize} out of range`;
  if (windowLength < 1 || windowLength > MAX_WINDOW_BYTES)
    return `window of ${windowLength} bytes out of range`;
  const blocks = blockCount(windowLength, blockSize);
  if (blocks > MAX_SIGNATURE_BLOCKS) return `${blocks} blocks, over ${MAX_SIGNATURE_BLOCKS}`;
  if (entries.length !== blocks * SIGNATURE_ENTRY_BYTES) return "signature length does not match its blocks";
  return undefined;
}
