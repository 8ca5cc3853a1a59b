/**
 * The bytes of small files the host has just read to list them, kept for a moment so that the
 * GET_CHUNKS that follows a manifest is answered from memory instead of reading each file a
 * second time. Keyed by chunk hash and by the identity (device, inode, size, mtime) of the file
 * the bytes were read from: a request is served only if the path it names, looked up now beneath
 * its folder (opened beneath the share root, no symlink on the way: FileLookup), is that same
 * file, so bytes are never handed out on the strength of a hash alone, whatever path the walk
 * had read them through.
 *
 * Files are read straight into one ring buffer, the oldest entries giving way as it wraps: a
 * fixed amount of memory and no garbage. A Buffer per file cost ~2.4x its bytes in peak RSS
 * (16 MiB of them: +38 MB), each a separate allocation the collector had to promote and sweep.
 */
interface Slot {
  start: number;
  size: number;
}

export class RecentChunks {
  readonly #ring: Buffer;
  /** In the order written, which is ring order from the oldest on. */
  readonly #slots = new Map<string, Slot>();
  #head = 0;

  constructor(capacityBytes: number) {
    this.#ring = Buffer.allocUnsafeSlow(capacityBytes); // its own memory, never Node's shared pool
  }

  /**
   * Room for `size` bytes to read a file into, in the ring (forgetting the entries it overlaps)
   * or, when larger than the ring, a buffer of its own. Valid until the next call.
   */
  reserve(size: number): Buffer {
    if (size > this.#ring.length) return Buffer.allocUnsafe(size);
    let start = this.#head;
    const wraps = start + size > this.#ring.length;
    if (wraps) start = 0;
    const end = start + size;
    for (const [key, slot] of this.#slots) {
      const tail = wraps && slot.start >= this.#head; // older than anything at the front
      const overlaps = slot.start < end && slot.start + slot.size > start;
      if (!tail && !overlaps) break;
      this.#slots.delete(key);
    }
    this.#head = end;
    return this.#ring.subarray(start, end);
  }

  /**
   * Remembers that `data`, a view of the last reserved space, is the chunk with this hash in the
   * file of this identity (OpenedFile.identity).
   */
  add(hash: Buffer, fileIdentity: string, data: Buffer): void {
    if (data.buffer !== this.#ring.buffer || data.length === 0) return;
    const key = slotKey(hash, fileIdentity);
    this.#slots.delete(key); // re-added at the end, where its bytes now are in ring order
    this.#slots.set(key, { start: data.byteOffset, size: data.length });
  }

  /** The chunk's bytes as read from the file of this identity, a view to be copied before the next `reserve`. */
  get(hash: Buffer, fileIdentity: string): Buffer | undefined {
    const slot = this.#slots.get(slotKey(hash, fileIdentity));
    return slot && this.#ring.subarray(slot.start, slot.start + slot.size);
  }

  get bytes(): number {
    let total = 0;
    for (const slot of this.#slots.values()) total += slot.size;
    return total;
  }
}

function slotKey(hash: Buffer, fileIdentity: string): string {
  return `${fileIdentity}/${hash.toString("latin1")}`;
}
