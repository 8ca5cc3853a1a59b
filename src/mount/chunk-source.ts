/**
 * Verified chunks for a mount, by hash, from the nearest place that has them: memory (hot
 * chunks), the persistent chunk store (ChunkStore), a local file holding the same bytes
 * (LocalChunks), else the host (ChunkFetcher checks each against the hash the manifest committed
 * to). What is fetched lands in memory and in the store; concurrent asks for one chunk share one
 * fetch. The store and local files are read synchronously: a chunk from the page cache takes
 * tens of microseconds, less than a hop to the thread pool and back.
 */
import type { ChunkRef } from "../wire/messages.js";
import type { ChunkFetcher } from "./chunk-fetcher.js";
import { type Chunk, StoredChunk } from "./stored-chunk.js";

/** Bytes of verified chunks kept in memory, least recently used dropped first. */
export const DEFAULT_CACHE_BYTES = 256 << 20;

/** A place on this machine that may hold a chunk: the bytes it returns are verified. */
export interface NearbyChunks {
  read(ref: ChunkRef): Buffer | undefined;
  /** Runs `lookups` (read, many times) as one read of its index: one lock, not one per chunk. */
  together?<T>(lookups: () => T): T;
}

/** Where verified chunks are kept for later (the persistent store). */
export interface KeptChunks extends NearbyChunks {
  write(ref: ChunkRef, bytes: Buffer): void;
  /** Whether a file for the chunk is there (unverified: cheap, for prefetch to skip it). */
  holds(ref: ChunkRef): boolean;
  /** Starts reading a held chunk ahead of its reader. */
  preload?(ref: ChunkRef): void;
  /** The verified chunk preload() read or is reading; undefined inside if the store did not hold it. */
  preloaded?(ref: ChunkRef): Promise<Chunk | undefined> | undefined;
}

export interface ChunkSourceOptions {
  /** Bytes kept in memory (DEFAULT_CACHE_BYTES). */
  memoryBytes?: number;
  store?: KeptChunks;
  local?: NearbyChunks;
}

/** Where the chunks a mount served came from, in chunks and bytes. */
export interface ChunkCounts {
  fetchedChunks: number;
  fetchedBytes: number;
  storeChunks: number;
  storeBytes: number;
  localChunks: number;
  localBytes: number;
}

interface PendingChunk {
  readonly ref: ChunkRef;
  readonly promise: Promise<Chunk>;
  readonly resolve: (chunk: Chunk) => void;
  readonly reject: (reason: unknown) => void;
}

export class ChunkSource {
  readonly #fetch: ChunkFetcher;
  readonly #cacheBytes: number;
  readonly #store: KeptChunks | undefined;
  readonly #local: NearbyChunks | undefined;
  readonly #counts: ChunkCounts = {
    fetchedChunks: 0,
    fetchedBytes: 0,
    storeChunks: 0,
    storeBytes: 0,
    localChunks: 0,
    localBytes: 0,
  };
  /**
   * Verified chunks by hash (hex), in least-recently-used order: bytes, or where the store holds
   * them (those weigh STORED_CHUNK_WEIGHT, and are dropped once no longer vouched for).
   */
  readonly #chunks = new Map<string, Chunk>();
  /** Chunks being fetched, by hash: concurrent reads of one chunk share one fetch. */
  readonly #inFlight = new Map<string, Promise<Chunk>>();
  #cachedBytes = 0;

  constructor(fetch: ChunkFetcher, options: ChunkSourceOptions = {}) {
    this.#fetch = fetch;
    this.#cacheBytes = options.memoryBytes ?? DEFAULT_CACHE_BYTES;
    this.#store = options.store;
    this.#local = options.local;
  }

  /** Where the chunks served so far came from (memory hits are not counted). */
  counts(): ChunkCounts {
    return { ...this.#counts };
  }

  /** Whether the chunk is at hand without a fetch (in memory or the store) or already being fetched. */
  has(ref: ChunkRef): boolean {
    const key = ref.hash.toString("hex");
    return this.#held(key) !== undefined || this.#inFlight.has(key) || this.#store?.holds(ref) === true;
  }

  /**
   * The chunk `ref` of the file at `path`, its bytes checked against `ref.hash`: in memory, or
   * where the store holds them (StoredChunk).
   */
  get(path: string, ref: ChunkRef, signal: AbortSignal): Promise<Chunk> {
    const key = ref.hash.toString("hex");
    const cached = this.#held(key);
    if (cached !== undefined) {
      this.#chunks.delete(key);
      this.#chunks.set(key, cached);
      return Promise.resolve(cached);
    }
    const fetching = this.#inFlight.get(key);
    if (fetching !== undefined) return fetching;
    const preloaded = this.#store?.preloaded?.(ref);
    if (preloaded !== undefined)
      return preloaded.then((chunk) => {
        if (chunk === undefined) return this.#beyondMemory(path, key, ref, signal);
        // Where it lies is remembered (a kernel read sharing the chunk finds it in memory, and it
        // is counted once); bytes are not (see #nearby).
        if (!this.#chunks.has(key)) this.#counted(chunk);
        if (chunk instanceof StoredChunk) this.#remember(key, chunk);
        return chunk;
      });
    return this.#beyondMemory(path, key, ref, signal);
  }

  /** The chunk from the store, a local file or else the host. */
  #beyondMemory(path: string, key: string, ref: ChunkRef, signal: AbortSignal): Promise<Chunk> {
    const nearby = this.#nearby(key, ref);
    if (nearby !== undefined) return Promise.resolve(nearby);
    const pending = this.#pending(ref);
    this.#fetchInto(path, new Map([[key, pending]]), signal);
    return pending.promise;
  }

  /**
   * Fetches, as one request, those of `refs` not at hand (read-ahead, prefetch); errors are
   * dropped: a read that needs one of them asks again and answers EIO if that fails.
   */
  prefetch(path: string, refs: readonly ChunkRef[], signal: AbortSignal): void {
    const missing = new Map<string, PendingChunk>();
    // Every lookup of this step in one read of each database.
    const store = this.#store;
    const local = this.#local;
    const sortOut = () => this.#sortOut(refs, missing);
    const inLocal = local?.together === undefined ? sortOut : () => local.together?.(sortOut);
    if (store?.together === undefined) inLocal();
    else store.together(inLocal);
    if (missing.size > 0) this.#fetchInto(path, missing, signal);
  }

  /** Preloads those of `refs` the store holds; adds to `missing` those nothing here holds. */
  #sortOut(refs: readonly ChunkRef[], missing: Map<string, PendingChunk>): void {
    for (const ref of refs) {
      const key = ref.hash.toString("hex");
      if (this.#held(key) !== undefined || this.#inFlight.has(key) || missing.has(key)) continue;
      if (this.#store?.holds(ref) === true) {
        this.#store.preload?.(ref);
        continue;
      }
      if (this.#fromLocal(key, ref) !== undefined) continue;
      const pending = this.#pending(ref);
      pending.promise.catch(() => {});
      missing.set(key, pending);
    }
  }

  /**
   * The chunk from the store or a local file, if either holds it. What the store gives is not
   * kept in memory as well: it is read again faster than the garbage collector frees the copies
   * a sequential reader churns through (docs/decisions.md, "Mount: the chunk cache").
   */
  #nearby(key: string, ref: ChunkRef): Buffer | undefined {
    const stored = this.#store?.read(ref);
    if (stored !== undefined) {
      this.#counted(stored);
      return stored;
    }
    return this.#fromLocal(key, ref);
  }

  #counted(stored: Chunk): void {
    this.#counts.storeChunks++;
    this.#counts.storeBytes += stored instanceof StoredChunk ? stored.size : stored.length;
  }

  /** The chunk from a local file holding it, kept in memory, if one does. */
  #fromLocal(key: string, ref: ChunkRef): Buffer | undefined {
    const local = this.#local?.read(ref);
    if (local !== undefined) {
      this.#counts.localChunks++;
      this.#counts.localBytes += local.length;
      this.#remember(key, local);
    }
    return local;
  }

  /** A chunk about to be fetched, in flight (shared by other asks) until it settles. */
  #pending(ref: ChunkRef): PendingChunk {
    const key = ref.hash.toString("hex");
    let settle: Pick<PendingChunk, "resolve" | "reject"> | undefined;
    const promise = new Promise<Chunk>((resolve, reject) => {
      settle = { resolve, reject };
    });
    this.#inFlight.set(key, promise);
    const settled = () => this.#inFlight.delete(key);
    promise.then(settled, settled);
    return { ref, promise, resolve: settle?.resolve ?? (() => {}), reject: settle?.reject ?? (() => {}) };
  }

  /** One fetch of the chunks `pending` (by hash); each settles as its bytes come or the fetch fails. */
  #fetchInto(path: string, pending: Map<string, PendingChunk>, signal: AbortSignal): void {
    const onChunk = (ref: ChunkRef, chunk: Chunk) => {
      const key = ref.hash.toString("hex");
      this.#counts.fetchedChunks++;
      this.#counts.fetchedBytes += ref.size;
      this.#remember(key, chunk);
      if (!(chunk instanceof StoredChunk)) this.#store?.write(ref, chunk);
      pending.get(key)?.resolve(chunk);
      pending.delete(key);
    };
    const refs = [...pending.values()].map((chunk) => chunk.ref);
    const failAll = (reason: unknown) => {
      for (const chunk of pending.values()) chunk.reject(reason);
    };
    this.#fetch(path, refs, onChunk, signal).then(
      () => failAll(new Error(`a chunk of "${path}" was not fetched`)),
      failAll,
    );
  }

  /** The chunk in memory, unless it is where the store no longer vouches for it (then dropped). */
  #held(key: string): Chunk | undefined {
    const chunk = this.#chunks.get(key);
    if (!(chunk instanceof StoredChunk) || chunk.held) return chunk;
    this.#chunks.delete(key);
    this.#cachedBytes -= weight(chunk);
    return undefined;
  }

  #remember(key: string, chunk: Chunk): void {
    if (weight(chunk) > this.#cacheBytes || this.#chunks.has(key)) return;
    this.#chunks.set(key, chunk);
    this.#cachedBytes += weight(chunk);
    for (const [oldest, old] of this.#chunks) {
      if (this.#cachedBytes <= this.#cacheBytes) break;
      this.#chunks.delete(oldest);
      this.#cachedBytes -= weight(old);
    }
  }
}

/**
 * What a chunk where the store holds it counts for against the memory bound: its place, not its
 * bytes (a bound of 256 MiB then keeps where a quarter of a million such chunks lie).
 */
const STORED_CHUNK_WEIGHT = 1024;

function weight(chunk: Chunk): number {
  return chunk instanceof StoredChunk ? STORED_CHUNK_WEIGHT : chunk.length;
}
