/**
 * Reusable buffers for bulk data, in power-of-two size classes from 64 KiB to 8 MiB, each with
 * `HEADROOM` spare bytes so that a 1 MiB chunk plus its frame header fits the 1 MiB class. Each
 * pooled buffer owns its ArrayBuffer, so a view of it is enough to give it back. The pool keeps
 * at most `maxRetainedBytes`; what is in use is bounded by the callers (credit and windows).
 */

const MIN_CLASS_BITS = 16;
const MAX_CLASS_BITS = 23;
export const HEADROOM = 4096;

export class BufferPool {
  readonly #free: Buffer[][] = [];
  /** The pool's own buffers: `release` ignores anything else, so callers need not track origins. */
  readonly #mine = new WeakSet<ArrayBufferLike>();
  readonly #maxRetainedBytes: number;
  readonly #shared: boolean;
  #retainedBytes = 0;
  #inUseBytes = 0;
  #peakInUseBytes = 0;

  /** `shared`: buffers live in SharedArrayBuffers, for worker threads to work on in place. */
  constructor(maxRetainedBytes = 16 * 1024 * 1024, options: { shared?: boolean } = {}) {
    this.#maxRetainedBytes = maxRetainedBytes;
    this.#shared = options.shared ?? false;
    for (let bits = MIN_CLASS_BITS; bits <= MAX_CLASS_BITS; bits++) this.#free.push([]);
  }

  /** A buffer of exactly `size` bytes, a view of a pooled buffer of the next class up. */
  acquire(size: number): Buffer {
    const bits = Math.max(MIN_CLASS_BITS, Math.ceil(Math.log2(Math.max(size - HEADROOM, 1))));
    if (bits > MAX_CLASS_BITS) throw new RangeError(`buffer of ${size} bytes is larger than the pool serves`);
    const free = this.#free[bits - MIN_CLASS_BITS] as Buffer[];
    let buffer = free.pop();
    if (buffer === undefined) {
      const size = 2 ** bits + HEADROOM;
      buffer = this.#shared ? Buffer.from(new SharedArrayBuffer(size)) : Buffer.allocUnsafeSlow(size);
      this.#mine.add(buffer.buffer);
    } else {
      this.#retainedBytes -= buffer.length;
    }
    this.#inUseBytes += buffer.length;
    if (this.#inUseBytes > this.#peakInUseBytes) this.#peakInUseBytes = this.#inUseBytes;
    return buffer.subarray(0, size);
  }

  /** Returns a buffer obtained from `acquire` (any view of it); other buffers are ignored. */
  release(view: Buffer): void {
    if (!this.#mine.has(view.buffer)) return;
    const capacity = view.buffer.byteLength;
    this.#inUseBytes -= capacity;
    if (this.#retainedBytes + capacity > this.#maxRetainedBytes) return;
    const bits = Math.log2(capacity - HEADROOM);
    this.#free[bits - MIN_CLASS_BITS]?.push(Buffer.from(view.buffer, 0, capacity));
    this.#retainedBytes += capacity;
  }

  get inUseBytes(): number {
    return this.#inUseBytes;
  }

  get peakInUseBytes(): number {
    return this.#peakInUseBytes;
  }
}
