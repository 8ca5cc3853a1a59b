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
  /** A 30-bit key per hash inserted (a small integer, so no allocation per entry). */
  readonly #keys = new Set<number>();
  #valid: boolean;

  constructor(db: Database.Database) {
    const dataVersion = db.prepare("PRAGMA data_version").pluck();
    this.#dataVersion = () => dataVersion.get() as number;
    this.#coveredVersion = this.#dataVersion();
    this.#valid = db.prepare("SELECT 1 FROM chunks LIMIT 1").get() === undefined;
  }

  /** A chunk with `hash` was inserted by this connection. */
  add(hash: Buffer): void {
    if (this.#valid) this.#keys.add(keyOf(hash));
  }

  /** False only where no chunk with `hash` is in the index. */
  mayHold(hash: Buffer): boolean {
    if (!this.#valid || this.#keys.has(keyOf(hash))) return true;
    // Another connection wrote: its chunks are unknown here, so every hash is asked for from now on.
    if (this.#dataVersion() !== this.#coveredVersion) {
      this.#valid = false;
      this.#keys.clear();
      return true;
    }
    return false;
  }
}

function keyOf(hash: Buffer): number {
  return hash.readUInt32LE(0) & 0x3fffffff;
}
