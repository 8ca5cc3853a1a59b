/**
 * The host's half of a delta: finds the blocks of a client's signature in a chunk's new bytes,
 * rsync's way (a weak checksum rolled one byte at a time, confirmed by the strong hash), and
 * says the chunk as copies of those blocks and literal runs. Runs over every byte of changed
 * chunks only, so a plain loop: a 16-bit filter keeps the map lookups to likely hits.
 */
import type { DeltaOp } from "./script.js";
import {
  blockCount,
  packWeak,
  SIGNATURE_ENTRY_BYTES,
  type Signature,
  strongHash,
  weakChecksum,
} from "./signature.js";

export interface Delta {
  ops: DeltaOp[];
  /** The literal runs, in order: `data` ranges, never copies. */
  literals: Buffer[];
  literalBytes: number;
}

/**
 * Blocks with the same weak checksum tried at one position, at most: a window of one repeated
 * block (or a hostile signature) would otherwise cost a compare per block at every byte.
 */
const MAX_CANDIDATES = 8;

/** The full-length blocks of a signature by weak checksum (the short last block is apart). */
class BlockTable {
  readonly #first = new Map<number, number>();
  readonly #next: Int32Array;
  readonly #filter = new Uint8Array(65536);
  readonly #entries: Buffer;
  /** The strong hash of the bytes at `#strongAt` to `#strongEnd`, last computed. */
  readonly #strong = new Uint32Array(2);
  #strongAt = -1;
  #strongEnd = -1;
  readonly fullBlocks: number;

  constructor(signature: Signature) {
    const { windowLength, blockSize, entries } = signature;
    this.#entries = entries;
    this.fullBlocks = Math.floor(windowLength / blockSize);
    this.#next = new Int32Array(this.fullBlocks).fill(-1);
    for (let block = this.fullBlocks - 1; block >= 0; block--) {
      const weak = this.weakOf(block);
      const first = this.#first.get(weak);
      if (first !== undefined) this.#next[block] = first;
      this.#first.set(weak, block);
      this.#filter[weak & 0xffff] = 1;
    }
  }

  weakOf(block: number): number {
    return this.#entries.readUInt32LE(block * SIGNATURE_ENTRY_BYTES);
  }

  /** Whether `data[start, end)` has the block's strong hash (computed once per position). */
  strongMatches(block: number, data: Uint8Array, start: number, end: number): boolean {
    if (this.#strongAt !== start || this.#strongEnd !== end) {
      strongHash(data, start, end, this.#strong);
      this.#strongAt = start;
      this.#strongEnd = end;
    }
    const at = block * SIGNATURE_ENTRY_BYTES + 4;
    return (
      this.#entries.readUInt32LE(at) === this.#strong[0] &&
      this.#entries.readUInt32LE(at + 4) === this.#strong[1]
    );
  }

  /** Whether `data[start, end)` is block `block` (the one after the last matched). */
  continues(block: number, data: Uint8Array, start: number, end: number): boolean {
    return block >= 0 && block < this.fullBlocks && this.strongMatches(block, data, start, end);
  }

  /** A block with `weak` whose bytes are `data[start, end)`; `preferred` (the run's next block) first. */
  find(weak: number, preferred: number, data: Uint8Array, start: number, end: number): number {
    if (this.#filter[weak & 0xffff] === 0) return -1;
    if (
      preferred >= 0 &&
      preferred < this.fullBlocks &&
      this.weakOf(preferred) === weak &&
      this.strongMatches(preferred, data, start, end)
    )
      return preferred;
    let tries = MAX_CANDIDATES;
    for (let block = this.#first.get(weak) ?? -1; block >= 0 && tries > 0; block = this.#next[block] ?? -1) {
      if (block !== preferred && this.strongMatches(block, data, start, end)) return block;
      tries--;
    }
    return -1;
  }
}

/** Collects ops, merging a copy that continues the previous one into it. */
class ScriptBuilder {
  readonly ops: DeltaOp[] = [];
  readonly literals: Buffer[] = [];
  literalBytes = 0;

  constructor(readonly data: Buffer) {}

  emit(literalStart: number, literalEnd: number, block: number, count: number): void {
    const literal = literalEnd - literalStart;
    if (literal > 0) {
      this.literals.push(this.data.subarray(literalStart, literalEnd));
      this.literalBytes += literal;
    }
    const last = this.ops.at(-1);
    if (literal === 0 && last !== undefined && count > 0 && last.block + last.count === block)
      last.count += count;
    else if (literal > 0 || count > 0) this.ops.push({ literal, block, count });
  }
}

/** `data` (a chunk's new bytes) as copies from the signed window and literal runs. */
export function matchBlocks(data: Buffer, signature: Signature): Delta {
  const { blockSize } = signature;
  const table = new BlockTable(signature);
  const script = new ScriptBuilder(data);
  const length = data.length;
  let literalStart = 0;
  let position = 0;
  let preferred = -1;
  let a = 0;
  let b = 0;
  let fresh = true;
  while (table.fullBlocks > 0 && position + blockSize <= length) {
    const end = position + blockSize;
    // Unchanged runs go block after block: the next block is tried by its strong hash alone.
    let block = fresh && table.continues(preferred, data, position, end) ? preferred : -1;
    if (block < 0) {
      if (fresh) {
        const weak = weakChecksum(data, position, end);
        a = weak & 0xffff;
        b = weak >>> 16;
        fresh = false;
      }
      block = table.find(packWeak(a, b), preferred, data, position, end);
    }
    if (block >= 0) {
      script.emit(literalStart, position, block, 1);
      position = end;
      literalStart = position;
      preferred = block + 1;
      fresh = true;
      continue;
    }
    if (end >= length) break;
    const out = data[position] ?? 0;
    const incoming = data[end] ?? 0;
    a = (a - out + incoming) | 0;
    b = (b - Math.imul(blockSize, out) + a) | 0;
    position++;
  }
  const tail = matchTail(data, signature, table, literalStart);
  script.emit(literalStart, length - tail.length, tail.block, tail.length > 0 ? 1 : 0);
  return { ops: script.ops, literals: script.literals, literalBytes: script.literalBytes };
}

/** The window's short last block, if the new bytes end with it after `literalStart`. */
function matchTail(
  data: Buffer,
  signature: Signature,
  table: BlockTable,
  literalStart: number,
): { block: number; length: number } {
  const tailLength = signature.windowLength % signature.blockSize;
  const block = blockCount(signature.windowLength, signature.blockSize) - 1;
  const start = data.length - tailLength;
  if (tailLength === 0 || start < literalStart) return { block: 0, length: 0 };
  if (table.weakOf(block) !== weakChecksum(data, start, data.length)) return { block: 0, length: 0 };
  if (!table.strongMatches(block, data, start, data.length)) return { block: 0, length: 0 };
  return { block, length: tailLength };
}
