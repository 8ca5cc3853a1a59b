/**
 * The bytes of small files the host has just read to list them, kept for a moment so that the
 * GET_CHUNKS that follows a manifest is answered from memory instead of resolving, opening and
 * reading each file a second time. Keyed by chunk hash, so a hit is the requested content by
 * construction whichever file or client it came from (every client of a host holds the same
 * share). Bounded in bytes; the oldest entries go first.
 */
export class RecentChunks {
  readonly #chunks = new Map<string, Buffer>();
  readonly #capacityBytes: number;
  #bytes = 0;

  constructor(capacityBytes: number) {
    this.#capacityBytes = capacityBytes;
  }

  add(hash: Buffer, data: Buffer): void {
    const key = hash.toString("latin1");
    if (data.length > this.#capacityBytes || this.#chunks.has(key)) return;
    this.#chunks.set(key, data);
    this.#bytes += data.length;
    for (const [oldest, bytes] of this.#chunks) {
      if (this.#bytes <= this.#capacityBytes) break;
      this.#chunks.delete(oldest);
      this.#bytes -= bytes.length;
    }
  }

  get(hash: Buffer): Buffer | undefined {
    return this.#chunks.get(hash.toString("latin1"));
  }

  get bytes(): number {
    return this.#bytes;
  }
}
