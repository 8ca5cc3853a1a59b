/**
 * Where chunk boundaries fall. A chunker looks at the bytes not yet assigned to a chunk and says
 * how long the next chunk is, or that it needs more bytes. Content-defined chunking is the
 * default: boundaries follow the content, so inserting or deleting bytes moves only the
 * boundaries near the edit and every other chunk keeps its hash. Fixed-size chunking stays for
 * tests and comparisons.
 */
import { type NativeCdc, nativeCdc } from "../platform/native.js";

export interface Chunker {
  /** Names the cutting rule and its sizes: chunk lists made by different rules never mix. */
  readonly id: string;
  /** The longest chunk this chunker produces; readers buffer at least this much. */
  readonly maxChunkSize: number;
  /**
   * Length of the next chunk at the start of `data`, or 0 when more bytes are needed to decide.
   * At end of file (`eof`), a non-empty `data` always yields a chunk.
   */
  nextChunkLength(data: Uint8Array, eof: boolean): number;
  /**
   * The lengths of the chunks at the start of `data`, one after another, written into `lengths`:
   * returns how many. Stops where `lengths` is full or where the rest needs more bytes to decide
   * (never at `eof`). The cuts nextChunkLength makes, all of a read's in one call.
   */
  cut(data: Uint8Array, eof: boolean, lengths: Uint32Array): number;
}

/** cut() through nextChunkLength, one chunk at a time. */
function cutEach(chunker: Chunker, data: Uint8Array, eof: boolean, lengths: Uint32Array): number {
  let count = 0;
  let at = 0;
  while (count < lengths.length && at < data.length) {
    const length = chunker.nextChunkLength(at === 0 ? data : data.subarray(at), eof);
    if (length === 0) break;
    lengths[count++] = length;
    at += length;
  }
  return count;
}

export class FixedChunker implements Chunker {
  readonly id: string;
  readonly maxChunkSize: number;

  constructor(chunkSize = 1024 * 1024) {
    if (!Number.isInteger(chunkSize) || chunkSize <= 0) throw new RangeError(`bad chunk size ${chunkSize}`);
    this.maxChunkSize = chunkSize;
    this.id = `fixed-${chunkSize}`;
  }

  nextChunkLength(data: Uint8Array, eof: boolean): number {
    if (data.length >= this.maxChunkSize) return this.maxChunkSize;
    return eof ? data.length : 0;
  }

  cut(data: Uint8Array, eof: boolean, lengths: Uint32Array): number {
    return cutEach(this, data, eof, lengths);
  }
}

export interface CdcSizes {
  min: number;
  /** A power of two: the cut condition is a test on log2(avg) bits. */
  avg: number;
  max: number;
  /** Normalization: mask bits added before `avg` and removed after (FastCDC's NC level). */
  normalization?: number;
}

/**
 * 16 KiB / 64 KiB / 256 KiB (mean chunk ~74 KiB, 14,400 chunks and a 0.64 MB manifest per GiB):
 * small enough that an edit costs little of a file, large enough that per-chunk work does not
 * dominate a pull (docs/decisions.md, "Chunk sizes"; `node dist/bench/micro/cdc-sizes.js`).
 */
export const DEFAULT_CDC_SIZES: CdcSizes = { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 };

/**
 * FastCDC (Xia et al., USENIX ATC 2016): a gear rolling hash — one shift, one add and one table
 * lookup per byte — tested against a mask, skipping the first `min` bytes of each chunk, with
 * normalized chunking (a harder mask before `avg`, an easier one after) so that sizes cluster
 * around `avg`. The mask bits are the hash's top bits, which depend on the last 32 bytes; low
 * bits would see only the last few. cut() scans in the addon where it is loaded (native/cdc.c:
 * `node dist/bench/micro/cdc-scan.js` compares the two), with the same rule; nextChunkLength
 * stays in JS, the portable path and the reference.
 */
export class ContentDefinedChunker implements Chunker {
  readonly id: string;
  readonly maxChunkSize: number;
  readonly #min: number;
  readonly #avg: number;
  readonly #maskHard: number;
  readonly #maskEasy: number;
  /** min, avg, max, the two masks and the gear table, as native/cdc.c reads them. */
  readonly #rule: Int32Array;
  readonly #scan: NativeCdc | null;

  /** `scan`: the addon's cut-point scan, or null for the JS loop (tests compare the two). */
  constructor(sizes: CdcSizes = DEFAULT_CDC_SIZES, scan: NativeCdc | null = nativeCdc ?? null) {
    const { min, avg, max } = sizes;
    const bits = Math.log2(avg);
    if (!Number.isInteger(bits) || bits < 8 || bits > 28 || !(min > 0 && min < avg && avg < max)) {
      throw new RangeError(`bad chunk sizes ${min}/${avg}/${max}`);
    }
    this.#min = min;
    this.#avg = avg;
    this.maxChunkSize = max;
    const level = sizes.normalization ?? 2;
    this.#maskHard = topBits(bits + level);
    this.#maskEasy = topBits(bits - level);
    this.id = `fastcdc-${min}-${avg}-${max}${level === 2 ? "" : `-nc${level}`}`;
    this.#rule = new Int32Array(RULE_GEAR + GEAR.length);
    this.#rule.set([min, avg, max, this.#maskHard, this.#maskEasy]);
    this.#rule.set(GEAR, RULE_GEAR);
    this.#scan = scan;
  }

  cut(data: Uint8Array, eof: boolean, lengths: Uint32Array): number {
    // A small file is one chunk, and the JS answers it faster than a call into the addon.
    if (this.#scan === null || data.length <= this.#min) return cutEach(this, data, eof, lengths);
    return this.#scan.cdcCuts(this.#rule, data, eof, lengths);
  }

  nextChunkLength(data: Uint8Array, eof: boolean): number {
    const length = data.length;
    if (length <= this.#min) return eof ? length : 0;
    const end = Math.min(length, this.maxChunkSize);
    const normal = Math.min(end, this.#avg);
    const maskHard = this.#maskHard;
    const maskEasy = this.#maskEasy;
    let hash = 0;
    let i = this.#min;
    for (; i < normal; i++) {
      hash = ((hash << 1) + (GEAR[data[i] as number] as number)) | 0;
      if ((hash & maskHard) === 0) return i + 1;
    }
    for (; i < end; i++) {
      hash = ((hash << 1) + (GEAR[data[i] as number] as number)) | 0;
      if ((hash & maskEasy) === 0) return i + 1;
    }
    if (end === this.maxChunkSize || eof) return end;
    return 0;
  }
}

/** The default chunker: what hosts cut manifests with and what clients index their files with. */
export function defaultChunker(): Chunker {
  return new ContentDefinedChunker();
}

/** Where the gear table starts in a packed rule, after min, avg, max and the two masks. */
const RULE_GEAR = 5;

function topBits(count: number): number {
  return (~0 << (32 - count)) | 0;
}

/** 256 pseudo-random 32-bit values from a fixed seed (SplitMix32): every peer must use the same table. */
const GEAR = ((): Int32Array => {
  const table = new Int32Array(256);
  let state = 0x7e1e9047;
  for (let i = 0; i < table.length; i++) {
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    table[i] = z ^ (z >>> 16);
  }
  return table;
})();
