/**
 * BLAKE3, behind one small module so the implementation can change. The native binding hashes
 * 5.3-6.2 GB/s (medians) on one core here for 64 KiB-4 MiB buffers (`node dist/bench/micro/run.js`);
 * targets.md puts pure-JS BLAKE3 at ~0.04 GB/s.
 */
import { Blake3Hasher, blake3 } from "@napi-rs/blake-hash";

export function hashBytes(data: Uint8Array): Buffer {
  return blake3(data as Buffer);
}

export function hashEquals(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/** Incremental BLAKE3 for data that arrives in pieces (a whole file, read chunk by chunk). */
export class StreamingHash {
  readonly #hasher = new Blake3Hasher();

  update(data: Uint8Array): void {
    this.#hasher.update(data as Buffer);
  }

  digest(): Buffer {
    return this.#hasher.digestBuffer();
  }
}

export function toHex(hash: Uint8Array): string {
  return Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString("hex");
}
