/**
 * The chunk store's rows, in SQLite (WAL, shared by every mount process of this user): where each
 * chunk lies (pack, position, size), its last use for the LRU bound, and its owner while it is
 * being written; the packs and the process appending to each; the total the bound is held to,
 * kept by triggers.
 *
 * A row with an owner is a reservation: counted in the total, never served. It becomes live
 * (owner NULL) only once its bytes are written.
 *
 * Evicted ranges that could not be punched yet (a mount process was reading their pack) are kept
 * in their own table until they are (pack-files.ts).
 */
import type Database from "better-sqlite3";
import { openPrivateDatabase } from "../store/index-database.js";
import { PACK_BLOCK, type PackLocation } from "./pack-files.js";

const SCHEMA_VERSION = 3;

/** A chunk's row: its hash and where it lies. */
export interface ChunkRow extends PackLocation {
  readonly hash: Buffer;
}

/** A reservation: a chunk being written by `owner`. */
export interface ReservedRow extends ChunkRow {
  readonly owner: number;
}

export class ChunkRows {
  readonly #db: Database.Database;
  readonly #statements: RowStatements;
  /** Whether the rows were made anew at open (another schema before, or none). */
  readonly created: boolean;

  constructor(path: string) {
    let created = false;
    this.#db = openPrivateDatabase(path, (db) => {
      created = createSchema(db);
    });
    this.created = created;
    this.#statements = prepareStatements(this.#db);
  }

  get open(): boolean {
    return this.#db.open;
  }

  /** A write transaction taken at once (as ChunkIndex's: waits for the lock). */
  transaction<T>(change: () => T): T {
    return this.#db.transaction(change).immediate();
  }

  /** Reads within one transaction (deferred: a shared lock at the first read, held to the end). */
  reading<T>(reads: () => T): T {
    return this.#db.transaction(reads).deferred();
  }

  /** A new pack appended by `owner`: its id, never used before. */
  createPack(owner: number): number {
    return Number(this.#statements.createPack.run(owner).lastInsertRowid);
  }

  /** No process appends to the pack any longer: once empty, it may be removed. */
  sealPack(id: number): void {
    this.#statements.sealPack.run(id);
  }

  /** Packs that a process is appending to, and that process. */
  appendedPacks(): Array<{ id: number; owner: number }> {
    return this.#statements.appendedPacks.all() as Array<{ id: number; owner: number }>;
  }

  /** Whether the pack is sealed and holds no row: then its file can go. */
  removable(id: number): boolean {
    return this.#statements.removable.get(id, id) !== undefined;
  }

  /** Sealed packs that hold no row. */
  removablePacks(): number[] {
    return (this.#statements.removablePacks.all() as Array<{ id: number }>).map(({ id }) => id);
  }

  packIds(): Set<number> {
    return new Set((this.#statements.packIds.all() as Array<{ id: number }>).map(({ id }) => id));
  }

  /** Removes the pack's row, and the ranges of it still to punch (they go with its file). */
  deletePack(id: number): void {
    this.#statements.deletePack.run(id);
    this.#statements.forgetPackPunches.run(id);
  }

  /** Ranges evicted but not yet punched: punched later (punches()). */
  addPunch(at: PackLocation): void {
    this.#statements.addPunch.run(at.pack, at.position, at.size);
  }

  /** The packs with evicted ranges still to punch. */
  packsToPunch(): number[] {
    return (this.#statements.packsToPunch.all() as Array<{ pack: number }>).map(({ pack }) => pack);
  }

  /** The evicted ranges of pack `pack` still to punch. */
  punchesOf(pack: number): PackLocation[] {
    return this.#statements.punchesOf.all(pack) as PackLocation[];
  }

  removePunch(at: PackLocation): void {
    this.#statements.removePunch.run(at.pack, at.position);
  }

  /** Bytes of evicted ranges still to punch. */
  unpunchedBytes(): number {
    return (this.#statements.unpunchedBytes.get() as { bytes: number | null }).bytes ?? 0;
  }

  /** Reserves `at` for the chunk `hash` (false if a row for it exists: held or being written). */
  reserve(hash: Buffer, at: PackLocation, used: number, owner: number): boolean {
    return this.#statements.reserve.run(hash, at.pack, at.position, at.size, used, owner).changes > 0;
  }

  /**
   * The chunk's bytes are written: its row is live. Its last use stays the time it was reserved:
   * chunks given together age in the order given, whichever write finished first.
   */
  commit(hash: Buffer): void {
    this.#statements.commit.run(hash);
  }

  remove(hash: Buffer): void {
    this.#statements.remove.run(hash);
  }

  /** Removes the live row of `hash` if it is still at `at`; whether it was. */
  removeLive(hash: Buffer, at: PackLocation): boolean {
    return this.#statements.removeLive.run(hash, at.pack, at.position).changes > 0;
  }

  /** Where the live chunk `hash` lies, if the store holds it. */
  locate(hash: Buffer): PackLocation | undefined {
    return this.#statements.locate.get(hash) as PackLocation | undefined;
  }

  touch(hash: Buffer, used: number): void {
    this.#statements.touch.run(used, hash);
  }

  /** The `limit` least recently used live chunks. */
  oldest(limit: number): ChunkRow[] {
    return this.#statements.oldest.all(limit) as ChunkRow[];
  }

  reserved(): ReservedRow[] {
    return this.#statements.reserved.all() as ReservedRow[];
  }

  /** Chunks (live and reserved) and the bytes they take in their packs. */
  totals(): { chunks: number; bytes: number } {
    return this.#statements.totals.get() as { chunks: number; bytes: number };
  }

  close(): void {
    this.#db.close();
  }
}

interface RowStatements {
  createPack: Database.Statement;
  sealPack: Database.Statement;
  appendedPacks: Database.Statement;
  removable: Database.Statement;
  removablePacks: Database.Statement;
  packIds: Database.Statement;
  deletePack: Database.Statement;
  forgetPackPunches: Database.Statement;
  addPunch: Database.Statement;
  packsToPunch: Database.Statement;
  punchesOf: Database.Statement;
  removePunch: Database.Statement;
  unpunchedBytes: Database.Statement;
  reserve: Database.Statement;
  commit: Database.Statement;
  remove: Database.Statement;
  removeLive: Database.Statement;
  locate: Database.Statement;
  touch: Database.Statement;
  oldest: Database.Statement;
  reserved: Database.Statement;
  totals: Database.Statement;
}

/** A chunk's whole blocks in its pack, in SQL (pack-files.ts footprint). */
const footprint = (size: string) => `((${size} + ${PACK_BLOCK - 1}) / ${PACK_BLOCK} * ${PACK_BLOCK})`;

/** Makes the tables unless they are of this version; whether it made them. */
function createSchema(db: Database.Database): boolean {
  if ((db.pragma("user_version", { simple: true }) as number) === SCHEMA_VERSION) return false;
  // owner: the process writing the chunk (or appending to the pack), null once done. The total
  // counts each chunk's whole blocks in its pack: what it takes on disk, so the bound is the disk's.
  db.exec(`
    DROP TABLE IF EXISTS chunks;
    DROP TABLE IF EXISTS totals;
    DROP TABLE IF EXISTS packs;
    DROP TABLE IF EXISTS punches;
    CREATE TABLE packs (id INTEGER PRIMARY KEY AUTOINCREMENT, owner INTEGER);
    CREATE TABLE chunks (
      hash BLOB PRIMARY KEY,
      pack INTEGER NOT NULL,
      position INTEGER NOT NULL,
      size INTEGER NOT NULL,
      used INTEGER NOT NULL,
      owner INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX chunks_by_use ON chunks (used) WHERE owner IS NULL;
    CREATE INDEX chunks_by_pack ON chunks (pack);
    CREATE TABLE punches (
      pack INTEGER NOT NULL,
      position INTEGER NOT NULL,
      size INTEGER NOT NULL,
      PRIMARY KEY (pack, position)
    ) WITHOUT ROWID;
    CREATE TABLE totals (id INTEGER PRIMARY KEY CHECK (id = 0), chunks INTEGER NOT NULL, bytes INTEGER NOT NULL);
    INSERT INTO totals VALUES (0, 0, 0);
    CREATE TRIGGER chunk_added AFTER INSERT ON chunks
      BEGIN UPDATE totals SET chunks = chunks + 1, bytes = bytes + ${footprint("NEW.size")}; END;
    CREATE TRIGGER chunk_removed AFTER DELETE ON chunks
      BEGIN UPDATE totals SET chunks = chunks - 1, bytes = bytes - ${footprint("OLD.size")}; END;
    PRAGMA user_version = ${SCHEMA_VERSION};
  `);
  return true;
}

function prepareStatements(db: Database.Database): RowStatements {
  const location = "pack, position, size";
  return {
    createPack: db.prepare("INSERT INTO packs (owner) VALUES (?)"),
    sealPack: db.prepare("UPDATE packs SET owner = NULL WHERE id = ?"),
    appendedPacks: db.prepare("SELECT id, owner FROM packs WHERE owner IS NOT NULL"),
    removable: db.prepare(
      "SELECT 1 FROM packs WHERE id = ? AND owner IS NULL AND NOT EXISTS (SELECT 1 FROM chunks WHERE pack = ?)",
    ),
    removablePacks: db.prepare(
      "SELECT id FROM packs WHERE owner IS NULL AND NOT EXISTS (SELECT 1 FROM chunks WHERE pack = packs.id)",
    ),
    packIds: db.prepare("SELECT id FROM packs"),
    deletePack: db.prepare("DELETE FROM packs WHERE id = ?"),
    forgetPackPunches: db.prepare("DELETE FROM punches WHERE pack = ?"),
    addPunch: db.prepare("INSERT OR IGNORE INTO punches (pack, position, size) VALUES (?, ?, ?)"),
    packsToPunch: db.prepare("SELECT DISTINCT pack FROM punches"),
    punchesOf: db.prepare(`SELECT ${location} FROM punches WHERE pack = ?`),
    removePunch: db.prepare("DELETE FROM punches WHERE pack = ? AND position = ?"),
    unpunchedBytes: db.prepare(`SELECT sum(${footprint("size")}) AS bytes FROM punches`),
    reserve: db.prepare(
      "INSERT OR IGNORE INTO chunks (hash, pack, position, size, used, owner) VALUES (?, ?, ?, ?, ?, ?)",
    ),
    commit: db.prepare("UPDATE chunks SET owner = NULL WHERE hash = ?"),
    remove: db.prepare("DELETE FROM chunks WHERE hash = ?"),
    removeLive: db.prepare(
      "DELETE FROM chunks WHERE hash = ? AND pack = ? AND position = ? AND owner IS NULL",
    ),
    locate: db.prepare(`SELECT ${location} FROM chunks WHERE hash = ? AND owner IS NULL`),
    touch: db.prepare("UPDATE chunks SET used = ? WHERE hash = ? AND owner IS NULL"),
    oldest: db.prepare(`SELECT hash, ${location} FROM chunks WHERE owner IS NULL ORDER BY used LIMIT ?`),
    reserved: db.prepare(`SELECT hash, ${location}, owner FROM chunks WHERE owner IS NOT NULL`),
    totals: db.prepare("SELECT chunks, bytes FROM totals WHERE id = 0"),
  };
}
