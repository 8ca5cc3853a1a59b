/**
 * A file's chunk list as its MANIFEST streams in: a read waits only until the list describes its
 * range, not for FILE_END (a cold host hashes a big file as it sends the list). Each chunk is
 * still checked against its own hash when fetched; the whole list is checked at FILE_END.
 *
 * The list is packed (hash, offset, size in flat arrays: 44 bytes a chunk, not an object each)
 * and its length is bounded by the file's size: a hostile host cannot make a listed file cost
 * more memory than an honest host's chunking of it would.
 */
import { DEFAULT_CDC_SIZES } from "../chunking/chunker.js";
import { MIN_HOLE_BYTES } from "../chunking/manifest.js";
import { ErrorCode, TeleportError } from "../errors.js";
import { type ChunkRef, HASH_SIZE } from "../wire/messages.js";

/** Bytes a listed chunk costs in memory (hash, offset, size). */
const BYTES_PER_CHUNK = HASH_SIZE + Float64Array.BYTES_PER_ELEMENT + Uint32Array.BYTES_PER_ELEMENT;
const INITIAL_CAPACITY = 16;

/**
 * The most chunks an honest host cuts a file of `size` bytes into: every chunk is at least the
 * chunker's minimum but the last of each run of data, and runs are separated by holes of at least
 * MIN_HOLE_BYTES.
 */
export function maxChunkCount(size: number): number {
  return Math.floor(size / DEFAULT_CDC_SIZES.min) + Math.floor(size / MIN_HOLE_BYTES) + 1;
}

export class ChunkListing {
  readonly #size: number;
  readonly #maxCount: number;
  #hashes: Buffer;
  #offsets: Float64Array;
  #sizes: Uint32Array;
  #count = 0;
  /** How far the list describes the file: chunks, and the holes before them. */
  #described = 0;
  #complete = false;
  #failure: { reason: unknown } | undefined;
  readonly #waiters = new Set<() => void>();
  /** Told how many bytes the list's memory grew or shrank by. */
  readonly #onResize: (delta: number) => void;

  constructor(size: number, onResize: (delta: number) => void = () => {}) {
    this.#size = size;
    this.#onResize = onResize;
    this.#maxCount = maxChunkCount(size);
    const capacity = Math.min(INITIAL_CAPACITY, this.#maxCount);
    this.#hashes = Buffer.alloc(capacity * HASH_SIZE);
    this.#offsets = new Float64Array(capacity);
    this.#sizes = new Uint32Array(capacity);
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  get complete(): boolean {
    return this.#complete;
  }

  /** Chunks listed so far. */
  get count(): number {
    return this.#count;
  }

  /** Memory the list holds, for the mount's bound on listings. */
  get memoryBytes(): number {
    return this.#offsets.length * BYTES_PER_CHUNK;
  }

  /**
   * Chunks already checked (in order, inside the file) by the caller's ChunkSequence; throws
   * PROTOCOL past the most chunks a file of this size can have.
   */
  add(chunks: readonly ChunkRef[]): void {
    const count = this.#count + chunks.length;
    if (count > this.#maxCount)
      throw new TeleportError(
        ErrorCode.PROTOCOL,
        `the host lists more chunks than a file of ${this.#size} bytes can have`,
      );
    if (count > this.#offsets.length) this.#grow(count);
    for (const chunk of chunks) {
      chunk.hash.copy(this.#hashes, this.#count * HASH_SIZE);
      this.#offsets[this.#count] = chunk.offset;
      this.#sizes[this.#count] = chunk.size;
      this.#count++;
    }
    const last = chunks.at(-1);
    if (last !== undefined) this.#described = last.offset + last.size;
    this.#wake();
  }

  /** FILE_END checked: what no chunk covers up to the size is a hole. */
  finish(): void {
    if (this.#count < this.#offsets.length) this.#resize(this.#count); // no room kept for more
    this.#complete = true;
    this.#described = this.#size;
    this.#wake();
  }

  fail(reason: unknown): void {
    this.#failure = { reason };
    this.#wake();
  }

  /** Whether the list already describes [0, end). */
  describes(end: number): boolean {
    return this.#complete || this.#described >= end;
  }

  /** Resolves once the list describes [0, end); throws the list's failure, or `signal`'s. */
  async until(end: number, signal: AbortSignal): Promise<void> {
    for (;;) {
      if (this.#failure !== undefined) throw this.#failure.reason;
      if (this.describes(end)) return;
      signal.throwIfAborted();
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        signal.addEventListener("abort", onAbort, { once: true });
        this.#waiters.add(() => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        });
      });
    }
  }

  /** The listed chunks overlapping [offset, offset + length), in order. */
  covering(offset: number, length: number): ChunkRef[] {
    const covering: ChunkRef[] = [];
    for (let i = this.#firstEndingAfter(offset); i < this.#count; i++) {
      const at = this.#offsets[i] ?? 0;
      if (at >= offset + length) break;
      const hash = this.#hashes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE);
      covering.push({ hash, offset: at, size: this.#sizes[i] ?? 0 });
    }
    return covering;
  }

  /** Index of the first chunk ending after `offset`, by binary search. */
  #firstEndingAfter(offset: number): number {
    let low = 0;
    let high = this.#count;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.#offsets[middle] ?? 0) + (this.#sizes[middle] ?? 0) <= offset) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  #grow(needed: number): void {
    this.#resize(Math.min(this.#maxCount, Math.max(needed, this.#offsets.length * 2)));
  }

  #resize(capacity: number): void {
    const before = this.memoryBytes;
    const hashes = Buffer.alloc(capacity * HASH_SIZE);
    this.#hashes.copy(hashes, 0, 0, this.#count * HASH_SIZE);
    const offsets = new Float64Array(capacity);
    offsets.set(this.#offsets.subarray(0, this.#count));
    const sizes = new Uint32Array(capacity);
    sizes.set(this.#sizes.subarray(0, this.#count));
    this.#hashes = hashes;
    this.#offsets = offsets;
    this.#sizes = sizes;
    this.#onResize(this.memoryBytes - before);
  }

  #wake(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }
}
