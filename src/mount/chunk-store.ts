/**
 * A mount's persistent chunk cache: verified chunks kept on disk by BLAKE3 hash, so a remount, a
 * second mount process, or the same content under another name reads them without the network.
 *
 * Chunks are appended to pack files (pack-files.ts), each process appending to a pack of its own
 * at a time; SQLite rows (chunk-rows.ts, shared by every mount process of this user) say where
 * each chunk lies and when it was last used, for the LRU bound. A file read sequentially lands
 * back to back in a pack, so reading it again is a few large reads (pack-preloads.ts) where one
 * file per chunk cost a file open, and its inode read, per 64 KiB (docs/decisions.md).
 *
 * Crash safety and trust: a chunk's row is live only once its bytes are written, and every chunk
 * read back is hashed again: bytes that do not match (torn by a crash, damaged, punched by
 * another process's eviction) are a miss, their row dropped, never served. So nothing is synced:
 * what a crash loses is found out on reading. Rows of a process that died mid-write are removed
 * at the next open, their ranges punched. The folder is the user's alone (0700), and pack files
 * are opened with O_NOFOLLOW, so another local user can neither plant a chunk nor redirect one.
 *
 * The bound: a chunk's row, counted in the total, is written before its bytes, after evicting
 * the least recently used chunks it needs room for; an evicted chunk's range is deallocated (a
 * hole punched) and a pack left without chunks is removed. A range in a pack that a mount process
 * is reading at that moment is punched once none is (its bytes may be on their way to the kernel
 * from the pack: pack-files.ts): recorded, and punched at the next sweep, within seconds. Such
 * waiting ranges count against the bound too: while they fill it, nothing more is kept, so the
 * packs never take more than the bound on disk. Where holes cannot be punched (portable mode),
 * evicted ranges stay allocated until their pack empties: packs then roll at an eighth of the
 * bound, so LRU order empties old ones whole.
 */
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { hashBytes } from "../chunking/hash.js";
import { platformIo } from "../platform/io.js";
import type { ChunkRef } from "../wire/messages.js";
import { isAlive, privateFolder } from "./chunk-files.js";
import { type ChunkRow, ChunkRows } from "./chunk-rows.js";
import { PackBatch } from "./pack-batch.js";
import { footprint, LOCK_IDLE_MS, PackFiles, type PackLocation, type PunchHole } from "./pack-files.js";
import { PackPreloads } from "./pack-preloads.js";
import { PackWriter } from "./pack-writer.js";
import type { Chunk } from "./stored-chunk.js";

const DATABASE_FILE = "chunks.db";
/**
 * Last uses are written this often (one transaction), not at every read; idle pack locks are let
 * go and waiting punches made as often.
 */
const TOUCH_INTERVAL_MS = 1000;
/** Chunks last read, kept: a chunk that two reads of the kernel share is read from disk once. */
const RECENT_CHUNKS = 32;
/** Hashes known to be held, and where, so prefetch asking again and again costs no query. */
const KNOWN_CHUNKS = 1 << 16;
/** The fan-out folders of the store's first layout (one file per chunk), removed at upgrade. */
const OLD_FAN_OUT = /^[0-9a-f]{2}$/;

export interface ChunkStoreStats {
  chunks: number;
  /** What the chunks take in their packs (whole blocks each), live and being written. */
  bytes: number;
  /** Evicted ranges not punched yet (their pack was being read), freed at a sweep soon after. */
  unpunched: number;
  capacity: number;
}

export interface ChunkStoreOptions {
  /** How evicted ranges are deallocated (platformIo.punchHole by default; tests pass others). */
  punchHole?: PunchHole;
  /** How long a pack not read keeps its lock (LOCK_IDLE_MS; tests make it longer). */
  lockIdleMs?: number;
  /**
   * Whether packs are locked while read, so verified chunks are handed over where they lie
   * (StoredChunk); by default where the platform has locks. Tests turn it off to see the other way.
   */
  locks?: boolean;
}

export class ChunkStore {
  readonly folder: string;
  readonly capacity: number;
  readonly #rows: ChunkRows;
  readonly #packs: PackFiles;
  readonly #writer: PackWriter;
  readonly #preloads: PackPreloads;
  /** Hashes read since the last uses were written. */
  #touched = new Set<string>();
  readonly #touchTimer: NodeJS.Timeout;
  readonly #lockIdleMs: number;
  readonly #recent = new Map<string, Buffer>();
  readonly #known = new Map<string, PackLocation>();
  #lastUse = 0;
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(folder: string, capacity: number, options: ChunkStoreOptions) {
    this.folder = folder;
    this.capacity = capacity;
    this.#rows = new ChunkRows(join(folder, DATABASE_FILE));
    const lockFile = options.locks === false ? undefined : platformIo.lockFile;
    this.#packs = new PackFiles(folder, options.punchHole, lockFile);
    this.#writer = new PackWriter(this.#rows, this.#packs, capacity, {
      makeRoom: (uncounted) => this.#makeRoom(uncounted),
      written: (key, at) => this.#know(key, at),
      removeIfEmpty: (pack) => this.#removeIfEmpty(pack),
      now: () => this.#now(),
    });
    this.#preloads = new PackPreloads(this.#packs, {
      verified: (key) => this.#touched.add(key),
      damaged: (key, at) => this.#drop(key, at),
    });
    this.#lockIdleMs = options.lockIdleMs ?? LOCK_IDLE_MS;
    this.#touchTimer = setInterval(() => this.#tidy(), TOUCH_INTERVAL_MS);
    this.#touchTimer.unref();
  }

  /**
   * Opens (creating) the store in `folder`, private to this user, bounded by `capacity` bytes:
   * chunks beyond it (a smaller bound than last time) are evicted now, and what a killed process
   * was writing is removed.
   */
  static open(folder: string, capacity: number, options: ChunkStoreOptions = {}): ChunkStore {
    privateFolder(folder);
    const store = new ChunkStore(folder, capacity, options);
    if (store.#rows.created) removeOldLayout(folder);
    store.#removeAbandoned();
    store.#rows.transaction(() => store.#makeRoom());
    store.#punchWaiting();
    return store;
  }

  /** The chunk's verified bytes if the store holds it; bytes that do not match are dropped. */
  read(ref: ChunkRef): Buffer | undefined {
    if (this.#closed) return undefined;
    const key = ref.hash.toString("hex");
    const recent = this.#recent.get(key);
    if (recent !== undefined) return recent;
    const at = this.#locate(key, ref);
    if (at === undefined) return undefined;
    const bytes = this.#packs.readSync(at);
    if (bytes === undefined || !hashBytes(bytes).equals(ref.hash)) {
      this.#drop(key, at);
      return undefined;
    }
    this.#touched.add(key);
    this.#remember(key, bytes);
    return bytes;
  }

  /**
   * Starts reading a held chunk ahead of its reader, through the thread pool, together with the
   * chunks beside it in its pack asked for in the same turn. preloaded() then hands the verified
   * bytes over.
   */
  preload(ref: ChunkRef): void {
    const key = ref.hash.toString("hex");
    if (this.#closed || this.#recent.has(key) || this.#preloads.has(key)) return;
    const at = this.#locate(key, ref);
    if (at !== undefined) this.#preloads.add(key, ref, at);
  }

  /** The verified chunk preload() read or is reading (undefined inside: not held). */
  preloaded(ref: ChunkRef): Promise<Chunk | undefined> | undefined {
    return this.#preloads.get(ref.hash.toString("hex"));
  }

  /** Runs `lookups` (holds, preload) as one read of the rows: one database lock, not one per chunk. */
  together<T>(lookups: () => T): T {
    return this.#closed ? lookups() : this.#rows.reading(lookups);
  }

  /** Whether the store has the chunk (its row says so; read() verifies its bytes). */
  holds(ref: ChunkRef): boolean {
    return !this.#closed && this.#locate(ref.hash.toString("hex"), ref) !== undefined;
  }

  /**
   * Keeps a verified chunk, written in the background (a failed write only loses the copy). Beyond
   * what the writer may hold waiting for the disk the chunk is not kept (pack-writer.ts).
   */
  write(ref: ChunkRef, bytes: Buffer): void {
    const key = ref.hash.toString("hex");
    if (this.#closed || this.#known.has(key)) return;
    this.#writer.write(key, ref.hash, bytes);
  }

  /**
   * A region of this process's pack for a read-ahead batch the stream pool writes straight into
   * (pack-batch.ts); undefined when the store cannot take it (closed, or the bound too small).
   */
  reserveBatch(refs: readonly ChunkRef[]): PackBatch | undefined {
    if (this.#closed || refs.length === 0) return undefined;
    const places = this.#rows.transaction(() => this.#writer.reserveRegion(refs));
    const pack = places?.[0]?.pack;
    if (places === undefined || pack === undefined) return undefined;
    const fd = this.#packs.acquire(pack);
    // Locked before the pool writes: what it verifies is what is sent from the pack later.
    const generation = this.#packs.lockForReading(pack);
    const hooks = {
      written: (key: string, at: PackLocation) => this.#know(key, at),
      evicted: (at: PackLocation) => this.#evicted(at.pack, [at]),
      removeIfEmpty: (id: number) => this.#removeIfEmpty(id),
    };
    if (fd === undefined) {
      this.#rows.transaction(() => {
        for (const [i, place] of places.entries())
          if (place.reserved) this.#rows.remove(refs[i]?.hash ?? Buffer.alloc(0));
      });
      return undefined;
    }
    return new PackBatch(refs, places, fd, { rows: this.#rows, packs: this.#packs, hooks, generation });
  }

  stats(): ChunkStoreStats {
    return { ...this.#rows.totals(), unpunched: this.#rows.unpunchedBytes(), capacity: this.capacity };
  }

  /** Waits for the chunks being written, records last uses, closes the database; idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#writer.flush();
      this.#closed = true;
      clearInterval(this.#touchTimer);
      this.#preloads.close();
      this.#writeUses();
      this.#rows.transaction(() => {
        // A batch still reserved (its pool never finished) is not kept.
        for (const row of this.#rows.reserved()) if (row.owner === process.pid) this.#removeReserved(row);
        const sealed = this.#writer.seal();
        if (sealed !== undefined) this.#removeIfEmpty(sealed);
      });
      this.#packs.close(); // and this process's locks with them
      this.#punchWaiting();
      this.#rows.close();
    })();
    return this.#closing;
  }

  /** Where the held chunk lies: remembered, else from its row. */
  #locate(key: string, ref: ChunkRef): PackLocation | undefined {
    const known = this.#known.get(key);
    if (known !== undefined) return known;
    const at = this.#rows.locate(ref.hash);
    if (at !== undefined) this.#know(key, at);
    return at;
  }

  #know(key: string, at: PackLocation): void {
    if (this.#known.size >= KNOWN_CHUNKS) this.#known.clear();
    this.#known.set(key, at);
  }

  #remember(key: string, bytes: Buffer): void {
    this.#recent.set(key, bytes);
    if (this.#recent.size > RECENT_CHUNKS) {
      const oldest = this.#recent.keys().next().value;
      if (oldest !== undefined) this.#recent.delete(oldest);
    }
  }

  /**
   * Evicts least recently used chunks until what the rows count, with `uncounted` bytes about to
   * be written without a row, fits the capacity, and what is allocated with it (evicted ranges
   * still waiting for their punch) too (within a transaction); false if it cannot: the rest is
   * being written, or read where it lies, so nothing more is kept until the waiting ranges are
   * punched.
   */
  #makeRoom(uncounted = 0): boolean {
    for (;;) {
      const bytes = this.#rows.totals().bytes + uncounted;
      if (bytes <= this.capacity) return this.#fitsWithWaiting(bytes);
      const oldest = this.#rows.oldest(EVICT_BATCH);
      if (oldest.length === 0) return false;
      let excess = bytes - this.capacity;
      const evicted = new Map<number, ChunkRow[]>();
      for (const row of oldest) {
        if (excess <= 0) break;
        this.#known.delete(row.hash.toString("hex"));
        this.#rows.remove(row.hash);
        const ofPack = evicted.get(row.pack);
        if (ofPack === undefined) evicted.set(row.pack, [row]);
        else ofPack.push(row);
        excess -= footprint(row.size);
      }
      // A process killed before the transaction commits leaves rows over zeros: misses, never served.
      for (const [pack, rows] of evicted) {
        this.#evicted(pack, rows);
        this.#removeIfEmpty(pack);
      }
    }
  }

  /**
   * Whether `live` bytes and the ranges waiting for their punch fit the capacity, once those that
   * can be are punched: this process lets go of the packs it is not using at this moment (their
   * chunks are read again, verified, when next asked for).
   */
  #fitsWithWaiting(live: number): boolean {
    if (live + this.#rows.unpunchedBytes() <= this.capacity) return true;
    this.#punchWaiting();
    return live + this.#rows.unpunchedBytes() <= this.capacity;
  }

  /** Bytes that did not verify: their row is dropped (if still theirs) and their range punched. */
  #drop(key: string, at: PackLocation): void {
    this.#known.delete(key);
    if (this.#closed || !this.#rows.open) return;
    this.#rows.transaction(() => {
      if (!this.#rows.removeLive(Buffer.from(key, "hex"), at)) return;
      this.#evicted(at.pack, [at]);
      this.#removeIfEmpty(at.pack);
    });
  }

  /** Removes a pack no process appends to once it holds no chunk (within a transaction). */
  #removeIfEmpty(pack: number): void {
    if (this.#writer.appends(pack) || !this.#rows.removable(pack)) return;
    this.#rows.deletePack(pack);
    this.#packs.remove(pack);
  }

  /**
   * What processes that died left: their reservations (rows and ranges), the packs they were
   * appending to (sealed, removed if empty), and pack files without a row.
   */
  #removeAbandoned(): void {
    const files = this.#packs.list(); // listed before the rows are read: a new pack's row comes first
    this.#rows.transaction(() => {
      // Another process's, dead as far as can be seen from here (another PID namespace may say
      // otherwise): its ranges are punched only where no process reads them.
      for (const row of this.#rows.reserved())
        if (!isAlive(row.owner)) {
          this.#rows.remove(row.hash);
          this.#evicted(row.pack, [row]);
        }
      for (const { id, owner } of this.#rows.appendedPacks()) if (!isAlive(owner)) this.#rows.sealPack(id);
      for (const pack of this.#rows.removablePacks()) this.#removeIfEmpty(pack);
      const packs = this.#rows.packIds();
      for (const id of files) if (!packs.has(id)) this.#packs.remove(id);
    });
  }

  #removeReserved(row: ChunkRow): void {
    this.#packs.punchUnread(row);
    this.#rows.remove(row.hash);
  }

  /**
   * Ranges of pack `pack` that no row holds any longer: punched now, or, while a process reads
   * the pack, recorded to be punched later (within a transaction).
   */
  #evicted(pack: number, ranges: readonly PackLocation[]): void {
    if (this.#packs.punchEvicted(pack, ranges) === "busy") for (const at of ranges) this.#rows.addPunch(at);
  }

  /**
   * Punches the recorded ranges of packs no process reads any longer; this process lets go of
   * such a pack as soon as nothing of its own uses it (its chunks are then read again, verified).
   */
  #punchWaiting(): void {
    if (!this.#rows.open) return;
    this.#rows.transaction(() => {
      for (const pack of this.#rows.packsToPunch()) {
        this.#packs.letGo(pack);
        const ranges = this.#rows.punchesOf(pack);
        if (this.#packs.punchEvicted(pack, ranges) === "busy") continue;
        for (const at of ranges) this.#rows.removePunch(at);
      }
    });
  }

  /** Every second: last uses written, idle packs closed (their locks let go), waiting ranges punched. */
  #tidy(): void {
    this.#writeUses();
    this.#packs.closeIdle(Date.now() - this.#lockIdleMs);
    this.#punchWaiting();
  }

  #writeUses(): void {
    if (this.#touched.size === 0 || !this.#rows.open) return;
    const touched = this.#touched;
    this.#touched = new Set();
    this.#rows.transaction(() => {
      for (const key of touched) this.#rows.touch(Buffer.from(key, "hex"), this.#now());
    });
  }

  /** A time of use: milliseconds, made strictly increasing within this process so uses order. */
  #now(): number {
    this.#lastUse = Math.max(Date.now(), this.#lastUse + 1);
    return this.#lastUse;
  }
}

/** Chunks evicted per query while making room. */
const EVICT_BATCH = 64;

/** The chunk files of the store's first layout (one per chunk): not read by this one. */
function removeOldLayout(folder: string): void {
  for (const name of readdirSync(folder))
    if (OLD_FAN_OUT.test(name)) rmSync(join(folder, name), { recursive: true, force: true });
}
