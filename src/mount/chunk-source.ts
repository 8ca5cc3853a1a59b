/**
 * Verified chunks for a mount, by hash: from memory if held, else fetched from the host with
 * fetchChunks, which checks each chunk's BLAKE3 against the hash the manifest committed to (not
 * readRange: its hash comes with the bytes, so a hostile host could send wrong bytes with a
 * matching hash). Kept in a bounded in-memory cache; concurrent asks for one chunk share a fetch.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import type { ChunkRef } from "../wire/messages.js";
import type { MountHost } from "./mount-host.js";

/** Bytes of verified chunks kept in memory, least recently used dropped first. */
export const DEFAULT_CACHE_BYTES = 256 << 20;

export class ChunkSource {
  readonly #host: MountHost;
  readonly #cacheBytes: number;
  /** Verified chunks by hash (hex), in least-recently-used order. */
  readonly #chunks = new Map<string, Buffer>();
  /** Chunks being fetched, by hash: concurrent reads of one chunk share one fetch. */
  readonly #inFlight = new Map<string, Promise<Buffer>>();
  #cachedBytes = 0;

  constructor(host: MountHost, cacheBytes = DEFAULT_CACHE_BYTES) {
    this.#host = host;
    this.#cacheBytes = cacheBytes;
  }

  /** Whether the chunk is at hand without a fetch (or already being fetched). */
  has(ref: ChunkRef): boolean {
    const key = ref.hash.toString("hex");
    return this.#chunks.has(key) || this.#inFlight.has(key);
  }

  /** The chunk `ref` of the file at `path`, its bytes checked against `ref.hash`. */
  async get(path: string, ref: ChunkRef, signal: AbortSignal): Promise<Buffer> {
    const key = ref.hash.toString("hex");
    const cached = this.#chunks.get(key);
    if (cached !== undefined) {
      this.#chunks.delete(key);
      this.#chunks.set(key, cached);
      return cached;
    }
    let fetching = this.#inFlight.get(key);
    if (fetching === undefined) {
      fetching = this.#fetch(path, ref, signal);
      this.#inFlight.set(key, fetching);
      const settled = () => this.#inFlight.delete(key);
      fetching.then(settled, settled);
    }
    return fetching;
  }

  async #fetch(path: string, ref: ChunkRef, signal: AbortSignal): Promise<Buffer> {
    const client = await this.#host.client(signal);
    let received: Buffer | undefined;
    const request = { hash: ref.hash, size: ref.size, path, offset: ref.offset };
    // fetchChunks checks each chunk's BLAKE3 against request.hash before handing it over.
    const onChunk = (_request: unknown, data: Buffer) => {
      received = Buffer.from(data); // the cache keeps its own copy: the pooled buffer goes back
      client.pool.release(data);
    };
    await client.fetchChunks([request], onChunk, { signal });
    if (received === undefined || received.length !== ref.size)
      throw new TeleportError(
        ErrorCode.PROTOCOL,
        `the host did not send the chunk at ${ref.offset} of "${path}"`,
      );
    this.#remember(ref.hash.toString("hex"), received);
    return received;
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
