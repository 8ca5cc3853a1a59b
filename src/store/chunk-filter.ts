/**
 * What chunk hashes an index may hold, known without a query while every chunk in it is one this
 * connection inserted: the index held none when opened, and no other connection has written to
 * it since (SQLite's data_version says so). A cold pull then skips the lookup per chunk that
 * could find only its own chunks; a false "maybe" costs only that lookup.
 */
import type Database from "better-sqlite3";

export class ChunkFilter {
  readonly #dataVersion: () => number;
  /** The version of the database when the filter was last known to cover it. */
  readonly #coveredVersion: number;
  /** A bit per key (KEY_BITS of the hash) of the hashes inserted: fixed memory, whatever the pull. */
  #keys: Uint8Array | undefined;

  constructor(db: Database.Database) {
    const dataVersion = db.prepare("PRAGMA data_version").pluck();
    this.#dataVersion = () => dataVersion.get() as number;
    this.#coveredVersion = this.#dataVersion();
    if (db.prepare("SELECT 1 FROM chunks LIMIT 1").get() === undefined) this.#keys = new Uint8Array(KEYS / 8);
  }

  /** A chunk with `hash` was inserted by this connection. */
  add(hash: Buffer): void {
    const keys = this.#keys;
    if (keys === undefined) return;
    const key = keyOf(hash);
    keys[key >>> 3] = (keys[key >>> 3] ?? 0) | (1 << (key & 7));
  }

  /** False only where no chunk with `hash` is in the index. */
  mayHold(hash: Buffer): boolean {
    const keys = this.#keys;
    if (keys === undefined) return true;
    const key = keyOf(hash);
    if ((keys[key >>> 3] ?? 0) & (1 << (key & 7))) return true;
    // Another connection wrote: its chunks are unknown here, so every hash is asked for from now on.
    if (this.#dataVersion() !== this.#coveredVersion) {
      this.#keys = undefined;
      return true;
    }
    return false;
  }
}

/**
 * 2^23 keys, a 1 MiB bitmap: a million chunks inserted (a 70 GiB pull) leave a wrong "maybe", and
 * so a lookup, for one hash in eight.
 */
const KEY_BITS = 23;
const KEYS = 2 ** KEY_BITS;

function keyOf(hash: Buffer): number {
  return hash.readUInt32LE(0) & (KEYS - 1);
}
