/**
 * Verified chunks for a mount, by hash: from memory if held, else fetched (ChunkFetcher checks
 * each against the hash the manifest committed to). Kept in a bounded in-memory cache;
 * concurrent asks for one chunk share one fetch.
 */
import type { ChunkRef } from "../wire/messages.js";
import type { ChunkFetcher } from "./chunk-fetcher.js";

/** Bytes of verified chunks kept in memory, least recently used dropped first. */
export const DEFAULT_CACHE_BYTES = 256 << 20;

interface PendingChunk {
  readonly ref: ChunkRef;
  readonly promise: Promise<Buffer>;
  readonly resolve: (bytes: Buffer) => void;
  readonly reject: (reason: unknown) => void;
}

export class ChunkSource {
  readonly #fetch: ChunkFetcher;
  readonly #cacheBytes: number;
  /** Verified chunks by hash (hex), in least-recently-used order. */
  readonly #chunks = new Map<string, Buffer>();
  /** Chunks being fetched, by hash: concurrent reads of one chunk share one fetch. */
  readonly #inFlight = new Map<string, Promise<Buffer>>();
  #cachedBytes = 0;

  constructor(fetch: ChunkFetcher, cacheBytes = DEFAULT_CACHE_BYTES) {
    this.#fetch = fetch;
    this.#cacheBytes = cacheBytes;
  }

  /** Whether the chunk is at hand without a fetch (or already being fetched). */
  has(ref: ChunkRef): boolean {
    const key = ref.hash.toString("hex");
    return this.#chunks.has(key) || this.#inFlight.has(key);
  }

  /** The chunk `ref` of the file at `path`, its bytes checked against `ref.hash`. */
  get(path: string, ref: ChunkRef, signal: AbortSignal): Promise<Buffer> {
    const key = ref.hash.toString("hex");
    const cached = this.#chunks.get(key);
    if (cached !== undefined) {
      this.#chunks.delete(key);
      this.#chunks.set(key, cached);
      return Promise.resolve(cached);
    }
    const fetching = this.#inFlight.get(key);
    if (fetching !== undefined) return fetching;
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
    for (const ref of refs) {
      const key = ref.hash.toString("hex");
      if (this.has(ref) || missing.has(key)) continue;
      const pending = this.#pending(ref);
      pending.promise.catch(() => {});
      missing.set(key, pending);
    }
    if (missing.size > 0) this.#fetchInto(path, missing, signal);
  }

  /** A chunk about to be fetched, in flight (shared by other asks) until it settles. */
  #pending(ref: ChunkRef): PendingChunk {
    const key = ref.hash.toString("hex");
    let settle: Pick<PendingChunk, "resolve" | "reject"> | undefined;
    const promise = new Promise<Buffer>((resolve, reject) => {
      settle = { resolve, reject };
    });
    this.#inFlight.set(key, promise);
    const settled = () => this.#inFlight.delete(key);
    promise.then(settled, settled);
    return { ref, promise, resolve: settle?.resolve ?? (() => {}), reject: settle?.reject ?? (() => {}) };
  }

  /** One fetch of the chunks `pending` (by hash); each settles as its bytes come or the fetch fails. */
  #fetchInto(path: string, pending: Map<string, PendingChunk>, signal: AbortSignal): void {
    const onChunk = (ref: ChunkRef, bytes: Buffer) => {
      const key = ref.hash.toString("hex");
      this.#remember(key, bytes);
      pending.get(key)?.resolve(bytes);
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

  #remember(key: string, bytes: Buffer): void {
    if (bytes.length > this.#cacheBytes || this.#chunks.has(key)) return;
    this.#chunks.set(key, bytes);
    this.#cachedBytes += bytes.length;
    for (const [oldest, old] of this.#chunks) {
      if (this.#cachedBytes <= this.#cacheBytes) break;
      this.#chunks.delete(oldest);
      this.#cachedBytes -= old.length;
    }
  }
}
