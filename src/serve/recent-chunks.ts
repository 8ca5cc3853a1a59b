/**
 * The bytes of small files the host has just read to list them, kept for a moment so that the
 * GET_CHUNKS that follows a manifest is answered from memory instead of reading each file a
 * second time. Keyed by chunk hash and by the identity (device, inode, size, mtime) of the file
 * the bytes were read from: a request is served only if the path it names, looked up now beneath
 * its folder (opened beneath the share root, no symlink on the way: FileLookup), is that same
 * file, so bytes are never handed out on the strength of a hash alone, whatever path the walk
 * had read them through.
 *
 * The memory is shared by all the host's threads: a client's data streams land on whichever
 * thread accepts them, rarely the one that walked its manifest, and each miss re-opened and
 * re-read the file. Each thread writes only its own partition (a ring of file bytes and a table
 * of the chunks in it) and reads every partition. Files are read straight into the ring, the
 * oldest entries giving way as it wraps: a fixed amount of memory and no garbage.
 *
 * A table entry is guarded by a sequence number, odd while its writer changes it. The writer
 * clears every entry whose bytes it is about to overwrite before it reads new bytes there; a
 * reader copies a chunk out and then checks that its entry's sequence did not move meanwhile,
 * so a copy torn by the writer is thrown away, never sent.
 */
import type { NameStats } from "../platform/open-beneath.js";

/**
 * Files at most this large are read whole into the ring when listed and hashed from there. Below
 * the smallest hole a chunk list skips (MIN_HOLE_BYTES), so their chunks are those chunkFile cuts.
 */
export const WHOLE_READ_FILE_BYTES = 512 * 1024;

/** Which bytes a file holds, as far as its metadata tells (see OpenedFile.identity). */
export type FileIdentity = Pick<NameStats, "dev" | "ino" | "size" | "mtimeMs">;

/** The host's recent-chunk memory and how it is split between the threads that write it. */
export interface RecentChunksMemory {
  buffer: SharedArrayBuffer;
  partitions: number;
  /** Each partition's ring of file bytes (its table follows it). */
  ringBytes: number;
}

/** A table entry: sequence, chunk size (0: empty), ring offset, pad; identity; chunk hash. */
const ENTRY_BYTES = 80;
const SEQ = 0;
const CHUNK_SIZE = 1;
const RING_START = 2;
/** Float64 fields from byte 16: device, inode, file size, mtime. */
const IDENTITY_AT = 16;
const HASH_AT = 48;
const HASH_BYTES = 32;
/** Table entries per ring byte: room for chunks of 512 bytes on average before they collide. */
const RING_BYTES_PER_ENTRY = 512;
/** Entries a chunk may take, from the one its hash names on: the first empty one is taken. */
const PROBES = 4;

/** One thread's partition: where its ring and its table lie in the shared memory. */
interface Partition {
  ringAt: number;
  tableAt: number;
}

export class RecentChunks {
  readonly #memory: SharedArrayBuffer;
  readonly #bytes: Buffer;
  readonly #words: Int32Array;
  readonly #floats: Float64Array;
  readonly #partitions: Partition[];
  readonly #ringBytes: number;
  readonly #entries: number;
  readonly #own: Partition;
  /** This thread's entries in ring order from the oldest: entry index and ring offset. */
  readonly #written: EntryQueue;
  #head = 0;

  /** Shared memory for `partitions` writers of `ringBytes` each. */
  static allocate(ringBytes: number, partitions: number): RecentChunksMemory {
    const layout = partitionLayout(ringBytes);
    const buffer = new SharedArrayBuffer(layout.partitionBytes * partitions);
    return { buffer, partitions, ringBytes: layout.ringBytes };
  }

  /** A cache of its own, `ringBytes` large (one thread, one partition). */
  static standalone(ringBytes: number): RecentChunks {
    return new RecentChunks(RecentChunks.allocate(ringBytes, 1), 0);
  }

  /** The cache in `memory`, writing partition `own` (one per thread) and reading all. */
  constructor(memory: RecentChunksMemory, own: number) {
    const { ringBytes, entries, partitionBytes } = partitionLayout(memory.ringBytes);
    this.#memory = memory.buffer;
    this.#bytes = Buffer.from(memory.buffer);
    this.#words = new Int32Array(memory.buffer);
    this.#floats = new Float64Array(memory.buffer);
    this.#ringBytes = ringBytes;
    this.#entries = entries;
    this.#partitions = Array.from({ length: memory.partitions }, (_, p) => ({
      ringAt: p * partitionBytes,
      tableAt: p * partitionBytes + ringBytes,
    }));
    const partition = this.#partitions[own];
    if (partition === undefined) throw new RangeError(`no recent-chunk partition ${own}`);
    this.#own = partition;
    this.#written = new EntryQueue(entries * 2);
  }

  /**
   * Room for `size` bytes to read a file into, in this thread's ring (forgetting the entries it
   * overlaps) or, when larger than the ring, a buffer of its own. Valid until the next call.
   */
  reserve(size: number): Buffer {
    if (size > this.#ringBytes) return Buffer.allocUnsafe(size);
    let start = this.#head;
    const wraps = start + size > this.#ringBytes;
    if (wraps) start = 0;
    const end = start + size;
    const written = this.#written;
    while (written.length > 0) {
      const oldest = written.oldestRingStart;
      const tail = wraps && oldest >= this.#head; // older than anything at the front
      const overlaps = oldest < end && oldest + written.oldestSize > start;
      if (!tail && !overlaps) break;
      this.#clear(written.oldestEntry, oldest);
      written.shift();
    }
    this.#head = end;
    const at = this.#own.ringAt + start;
    return this.#bytes.subarray(at, at + size);
  }

  /**
   * Remembers that `data`, a view of the last reserved space, is the chunk with this hash in the
   * file of this identity (OpenedFile.identity).
   */
  add(hash: Buffer, file: FileIdentity, data: Buffer): void {
    if (data.buffer !== this.#memory || data.length === 0) return;
    const ringStart = data.byteOffset - this.#own.ringAt;
    const entry = this.#freeEntry(this.#entryOf(this.#own, hash, file));
    if (this.#written.full) {
      this.#clear(this.#written.oldestEntry, this.#written.oldestRingStart);
      this.#written.shift();
    }
    this.#written.push(entry, ringStart, data.length);
    const words = this.#words;
    const word = entry / 4;
    Atomics.add(words, word + SEQ, 1); // odd: being written
    words[word + CHUNK_SIZE] = data.length;
    words[word + RING_START] = ringStart;
    this.#writeIdentity(entry, file);
    hash.copy(this.#bytes, entry + HASH_AT, 0, HASH_BYTES);
    Atomics.add(words, word + SEQ, 1);
  }

  /**
   * Copies the chunk with this hash, as read from the file of this identity by any thread, into
   * `target` (exactly its size); false where no thread holds it whole.
   */
  copy(hash: Buffer, file: FileIdentity, target: Buffer): boolean {
    for (const partition of this.#partitions) if (this.#copyFrom(partition, hash, file, target)) return true;
    return false;
  }

  /** Bytes of chunks this thread's partition holds. */
  get bytes(): number {
    let total = 0;
    for (let i = 0; i < this.#entries; i++)
      total += this.#words[(this.#own.tableAt + i * ENTRY_BYTES) / 4 + CHUNK_SIZE] ?? 0;
    return total;
  }

  #copyFrom(partition: Partition, hash: Buffer, file: FileIdentity, target: Buffer): boolean {
    const home = this.#entryOf(partition, hash, file);
    for (let probe = 0; probe < PROBES; probe++)
      if (this.#copyEntry(partition, this.#probed(partition, home, probe), hash, file, target)) return true;
    return false;
  }

  #copyEntry(partition: Partition, entry: number, hash: Buffer, file: FileIdentity, target: Buffer): boolean {
    const words = this.#words;
    const seq = entry / 4 + SEQ;
    const before = Atomics.load(words, seq);
    if ((before & 1) !== 0 || words[entry / 4 + CHUNK_SIZE] !== target.length) return false;
    if (!this.#holds(entry, hash, file)) return false;
    const from = partition.ringAt + (words[entry / 4 + RING_START] ?? 0);
    this.#bytes.copy(target, 0, from, from + target.length);
    // A read-modify-write: the copy's loads are done before it, whatever the processor.
    return Atomics.compareExchange(words, seq, before, before) === before;
  }

  /** Whether the entry (read between its sequence checks) is this chunk of this file. */
  #holds(entry: number, hash: Buffer, file: FileIdentity): boolean {
    const floats = this.#floats;
    const at = (entry + IDENTITY_AT) / 8;
    if (floats[at] !== file.dev || floats[at + 1] !== file.ino) return false;
    if (floats[at + 2] !== file.size || floats[at + 3] !== file.mtimeMs) return false;
    const bytes = this.#bytes;
    for (let i = 0; i < HASH_BYTES; i += 4)
      if (bytes.readInt32LE(entry + HASH_AT + i) !== hash.readInt32LE(i)) return false;
    return true;
  }

  #writeIdentity(entry: number, file: FileIdentity): void {
    const at = (entry + IDENTITY_AT) / 8;
    this.#floats[at] = file.dev;
    this.#floats[at + 1] = file.ino;
    this.#floats[at + 2] = file.size;
    this.#floats[at + 3] = file.mtimeMs;
  }

  /** Empties this thread's entry if it still holds the chunk at `ringStart`. */
  #clear(entry: number, ringStart: number): void {
    const words = this.#words;
    const word = entry / 4;
    if (words[word + CHUNK_SIZE] === 0 || words[word + RING_START] !== ringStart) return;
    Atomics.add(words, word + SEQ, 1);
    words[word + CHUNK_SIZE] = 0;
    Atomics.add(words, word + SEQ, 1);
  }

  /** The first empty entry of this thread's from `home` on, or `home` itself (overwritten). */
  #freeEntry(home: number): number {
    for (let probe = 0; probe < PROBES; probe++) {
      const entry = this.#probed(this.#own, home, probe);
      if (this.#words[entry / 4 + CHUNK_SIZE] === 0) return entry;
    }
    return home;
  }

  /** The entry `probe` places after `home`, wrapping within the partition's table. */
  #probed(partition: Partition, home: number, probe: number): number {
    const index = (home - partition.tableAt) / ENTRY_BYTES;
    return partition.tableAt + ((index + probe) % this.#entries) * ENTRY_BYTES;
  }

  /** The byte offset of the table entry a chunk of a file goes to first in `partition`. */
  #entryOf(partition: Partition, hash: Buffer, file: FileIdentity): number {
    const mixed = hash.readUInt32LE(0) ^ Math.imul(file.ino >>> 0, 0x9e3779b1);
    return partition.tableAt + ((mixed >>> 0) % this.#entries) * ENTRY_BYTES;
  }
}

/** A partition's ring, its table of entries, and its size in bytes (a multiple of 8). */
function partitionLayout(ringBytes: number): { ringBytes: number; entries: number; partitionBytes: number } {
  const ring = Math.ceil(ringBytes / 8) * 8;
  const entries = Math.max(16, Math.ceil(ring / RING_BYTES_PER_ENTRY));
  return { ringBytes: ring, entries, partitionBytes: ring + entries * ENTRY_BYTES };
}

/** A bounded FIFO of a writer's entries (entry offset, ring offset, size), without garbage. */
class EntryQueue {
  readonly #fields: Float64Array;
  readonly #capacity: number;
  #first = 0;
  length = 0;

  constructor(capacity: number) {
    this.#capacity = capacity;
    this.#fields = new Float64Array(capacity * 3);
  }

  get full(): boolean {
    return this.length === this.#capacity;
  }

  get oldestEntry(): number {
    return this.#fields[this.#first * 3] ?? 0;
  }

  get oldestRingStart(): number {
    return this.#fields[this.#first * 3 + 1] ?? 0;
  }

  get oldestSize(): number {
    return this.#fields[this.#first * 3 + 2] ?? 0;
  }

  push(entry: number, ringStart: number, size: number): void {
    const at = ((this.#first + this.length) % this.#capacity) * 3;
    this.#fields[at] = entry;
    this.#fields[at + 1] = ringStart;
    this.#fields[at + 2] = size;
    this.length++;
  }

  shift(): void {
    this.#first = (this.#first + 1) % this.#capacity;
    this.length--;
  }
}
