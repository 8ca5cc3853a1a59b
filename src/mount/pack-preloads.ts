/**
 * Chunks read from the packs ahead of their reader, each verified (BLAKE3) as it is read, both
 * on a thread of their own (pack-read-thread.ts) so the main thread goes on answering the kernel.
 * Chunks asked for in one turn that lie back to back in a pack (a file read sequentially was
 * written so) are read with one pread: a warm sequential read becomes a few large reads of a few
 * files instead of one small read per chunk.
 *
 * The pack is locked for reading first (pack-files.ts), so a verified chunk is handed over as
 * where it lies (StoredChunk) and sent to the kernel from the pack: its bytes never cross into
 * this thread. Where packs cannot be locked, the bytes come over and chunks are views of them.
 */
import { hashBytes } from "../chunking/hash.js";
import type { ChunkRef } from "../wire/messages.js";
import { footprint, type PackFiles, type PackLocation } from "./pack-files.js";
import { PackReadThread } from "./pack-read-thread.js";
import { type Chunk, StoredChunk } from "./stored-chunk.js";

/**
 * Bytes of chunks read ahead of a reader and not yet dropped: the read-ahead window (at most
 * 64 MiB, remote-files.ts) and what the kernel's requests still share.
 */
const PRELOAD_BYTES = 96 << 20;
/**
 * The most one pread of adjacent chunks covers: large enough for the disk (4 MiB read a cold page
 * cache faster than 2, 8 no faster: docs/decisions.md), small enough to hand chunks over soon.
 */
export const PRELOAD_READ_BYTES = 4 << 20;

/** What the store does with a chunk once read: touched if it verified, dropped if not. */
export interface PreloadOutcome {
  verified(key: string): void;
  damaged(key: string, at: PackLocation): void;
}

interface Preload {
  readonly size: number;
  readonly chunk: Promise<Chunk | undefined>;
  /** What `chunk` settled to, once it has. */
  settled: Chunk | undefined;
}

interface QueuedChunk {
  readonly key: string;
  readonly hash: Buffer;
  readonly at: PackLocation;
  readonly resolve: (chunk: Chunk | undefined) => void;
}

export class PackPreloads {
  readonly #packs: PackFiles;
  readonly #outcome: PreloadOutcome;
  readonly #thread = new PackReadThread();
  #closed = false;
  /** Chunks read ahead (verified, or undefined for a miss), oldest first, and their sizes. */
  readonly #preloads = new Map<string, Preload>();
  #bytes = 0;
  /** Asked for in this turn, read together at its end. */
  #queued: QueuedChunk[] = [];

  constructor(packs: PackFiles, outcome: PreloadOutcome) {
    this.#packs = packs;
    this.#outcome = outcome;
  }

  /** Whether the chunk is read ahead or being read, and still vouched for. */
  has(key: string): boolean {
    return this.#current(key) !== undefined;
  }

  /**
   * The verified chunk read ahead (undefined inside: not held after all, or no longer vouched for:
   * then it is read again).
   */
  get(key: string): Promise<Chunk | undefined> | undefined {
    const preload = this.#current(key);
    return preload?.chunk.then((chunk) => {
      if (!(chunk instanceof StoredChunk) || chunk.held) return chunk;
      this.#current(key); // drops it
      return undefined;
    });
  }

  /** Starts reading the chunk `ref`, which lies at `at`. */
  add(key: string, ref: ChunkRef, at: PackLocation): void {
    let resolve: (chunk: Chunk | undefined) => void = () => {};
    const preload: Preload = {
      size: ref.size,
      chunk: new Promise<Chunk | undefined>((settle) => {
        resolve = settle;
      }),
      settled: undefined,
    };
    void preload.chunk.then((chunk) => {
      preload.settled = chunk;
    });
    if (this.#queued.length === 0) queueMicrotask(() => this.#readQueued());
    this.#queued.push({ key, hash: ref.hash, at, resolve });
    this.#forget(key);
    this.#preloads.set(key, preload);
    this.#bytes += ref.size;
    for (const [oldest] of this.#preloads) {
      if (this.#bytes <= PRELOAD_BYTES) break;
      this.#forget(oldest);
    }
  }

  /** The chunk's preload, unless it settled where the store no longer vouches for it (then dropped). */
  #current(key: string): Preload | undefined {
    const preload = this.#preloads.get(key);
    const settled = preload?.settled;
    if (!(settled instanceof StoredChunk) || settled.held) return preload;
    this.#forget(key);
    return undefined;
  }

  #forget(key: string): void {
    const preload = this.#preloads.get(key);
    if (preload === undefined) return;
    this.#preloads.delete(key);
    this.#bytes -= preload.size;
  }

  #readQueued(): void {
    const queued = this.#queued;
    this.#queued = [];
    for (const run of adjacentRuns(queued)) void this.#readRun(run);
  }

  /** Ends the read thread (runs still out are read no further: their chunks are misses). */
  close(): void {
    this.#closed = true;
    this.#thread.close();
  }

  /** One read for chunks back to back in a pack, each verified: where they lie, or views of the read. */
  async #readRun(run: QueuedChunk[]): Promise<void> {
    const first = run[0];
    const last = run.at(-1);
    if (first === undefined || last === undefined) return;
    const start = first.at.position;
    const length = last.at.position + last.at.size - start;
    const generation = this.#packs.lockForReading(first.at.pack);
    const onThread = await this.#onThread(first.at.pack, start, length, run, generation === undefined);
    // Closed meanwhile: not read on this thread either (the packs' descriptors are closing).
    if (onThread === undefined && this.#closed) {
      for (const { resolve } of run) resolve(undefined);
      return;
    }
    const read = onThread ?? (await this.#here(start, length, run));
    run.forEach(({ key, at, resolve }, i) => {
      if (read.verified[i] !== 1) {
        this.#outcome.damaged(key, at);
        resolve(undefined);
      } else {
        this.#outcome.verified(key);
        const offset = at.position - start;
        resolve(
          read.run === undefined
            ? new StoredChunk(at, generation ?? 0, this.#packs)
            : read.run.subarray(offset, offset + at.size),
        );
      }
    });
  }

  /** The run read and verified by the read thread (its bytes only if `keep`); undefined if there is none. */
  async #onThread(
    pack: number,
    start: number,
    length: number,
    run: QueuedChunk[],
    keep: boolean,
  ): Promise<ReadRun | undefined> {
    const fd = this.#packs.acquire(pack);
    if (fd === undefined) return { run: Buffer.alloc(0), verified: new Uint8Array(run.length) };
    try {
      const chunks = run.map(({ hash, at }) => ({ offset: at.position - start, size: at.size, hash }));
      const reply = await this.#thread.read(fd, start, length, chunks, keep);
      if (reply === undefined) return undefined;
      return { run: reply.run === undefined ? undefined : Buffer.from(reply.run), verified: reply.verified };
    } finally {
      this.#packs.release(pack, fd);
    }
  }

  /** The run read through the thread pool and verified on this thread (no read thread). */
  async #here(start: number, length: number, run: QueuedChunk[]): Promise<ReadRun & { run: Buffer }> {
    const bytes = Buffer.allocUnsafe(length);
    const pack = run[0]?.at.pack ?? 0;
    const read = await this.#packs.readAsync(pack, start, bytes);
    const verified = new Uint8Array(run.length);
    run.forEach(({ hash, at }, i) => {
      const chunk = bytes.subarray(at.position - start, at.position - start + at.size);
      verified[i] = read && hashBytes(chunk).equals(hash) ? 1 : 0;
    });
    return { run: bytes, verified };
  }
}

/** A run's bytes (unless left in the pack) and, per chunk, 1 if it matched its hash. */
interface ReadRun {
  run: Buffer | undefined;
  verified: Uint8Array;
}

/** `chunks` cut where one does not follow the one before in its pack, or a read would grow too large. */
function adjacentRuns(chunks: readonly QueuedChunk[]): QueuedChunk[][] {
  const runs: QueuedChunk[][] = [];
  let run: QueuedChunk[] = [];
  let runStart = 0;
  for (const chunk of chunks) {
    const last = run.at(-1)?.at;
    const follows =
      last !== undefined &&
      chunk.at.pack === last.pack &&
      chunk.at.position === last.position + footprint(last.size) &&
      chunk.at.position + chunk.at.size - runStart <= PRELOAD_READ_BYTES;
    if (!follows) {
      if (run.length > 0) runs.push(run);
      run = [];
      runStart = chunk.at.position;
    }
    run.push(chunk);
  }
  if (run.length > 0) runs.push(run);
  return runs;
}
