/**
 * How chunks reach the packs: the chunks given in one turn get their rows in one transaction
 * (room made for each: the bound holds before a byte is written), places back to back in the
 * pack this process appends to, and one pwritev through the thread pool; their rows become live
 * once written. A pack rolls to a new one at PACK_BYTES (or an eighth of the bound).
 *
 * Bounded: chunks waiting for the disk are held in memory up to WAITING_BYTES; beyond that, new
 * ones are not kept. It is a cache: a chunk not kept is fetched again if read again, whereas
 * holding the reader back until a slow disk caught up would slow every read of the mount.
 */
import type { ChunkRef } from "../wire/messages.js";
import type { ChunkRows } from "./chunk-rows.js";
import { type RegionPlace, regionBytes } from "./pack-batch.js";
import { footprint, type PackFiles, type PackLocation } from "./pack-files.js";

/** A pack rolls to a new one at this size: packs few enough to keep open, small enough to empty. */
const PACK_BYTES = 256 << 20;
/** Chunk bytes given to write and not yet written, at most. */
export const WAITING_BYTES = 64 << 20;
/** Padding after a chunk, to the next block: written with it, so a run is one write. */
const ZEROS = Buffer.alloc(4096);

/** What the writer needs of its store, called within the store's transactions. */
export interface PackWriterHooks {
  /** Evicts until the rows, and `uncounted` bytes about to be written beside them, fit the bound; false if they cannot. */
  makeRoom(uncounted?: number): boolean;
  /** The chunk's row is live, at `at`. */
  written(key: string, at: PackLocation): void;
  /** The pack lost rows: removed if it holds none and no process appends to it. */
  removeIfEmpty(pack: number): void;
  /** A time of use for a row. */
  now(): number;
}

/** A chunk the store was asked to keep, until written. */
interface Incoming {
  readonly key: string;
  readonly hash: Buffer;
  readonly bytes: Buffer;
}

interface Placed extends Incoming {
  readonly at: PackLocation;
}

/** The pack this process appends to, and where its next chunk goes. */
interface AppendingPack {
  readonly id: number;
  tail: number;
}

export class PackWriter {
  readonly #rows: ChunkRows;
  readonly #packs: PackFiles;
  readonly #capacity: number;
  readonly #packBytes: number;
  readonly #hooks: PackWriterHooks;
  #appending: AppendingPack | undefined;
  /** Chunks waiting for their rows, taken in one transaction at the next turn of the event loop. */
  #incoming: Incoming[] = [];
  /** Hashes (hex) queued or being written by this process. */
  readonly #writing = new Set<string>();
  readonly #writes = new Set<Promise<void>>();
  #waitingBytes = 0;

  constructor(rows: ChunkRows, packs: PackFiles, capacity: number, hooks: PackWriterHooks) {
    this.#rows = rows;
    this.#packs = packs;
    this.#capacity = capacity;
    this.#packBytes = Math.min(PACK_BYTES, Math.floor(capacity / 8));
    this.#hooks = hooks;
  }

  /** Bytes given to write() and not yet written (or dropped). */
  get waitingBytes(): number {
    return this.#waitingBytes;
  }

  /** Queues a chunk for the next transaction; not kept if too large or too much is waiting. */
  write(key: string, hash: Buffer, bytes: Buffer): void {
    if (footprint(bytes.length) > this.#capacity || this.#writing.has(key)) return;
    if (this.#waitingBytes + bytes.length > WAITING_BYTES) return;
    this.#writing.add(key);
    this.#waitingBytes += bytes.length;
    if (this.#incoming.length === 0) setImmediate(() => this.#admit());
    this.#incoming.push({ key, hash, bytes });
  }

  /** Whether this process appends to `pack`. */
  appends(pack: number): boolean {
    return this.#appending?.id === pack;
  }

  /** Admits what is queued and waits for every write under way. */
  async flush(): Promise<void> {
    this.#admit();
    while (this.#writes.size > 0) await Promise.all(this.#writes);
  }

  /** Stops appending to the current pack (within a transaction); its id, if there was one. */
  seal(): number | undefined {
    const pack = this.#appending;
    this.#appending = undefined;
    if (pack !== undefined) this.#rows.sealPack(pack.id);
    return pack?.id;
  }

  /**
   * Places `refs` back to back in the appending pack, each with a reserved row (room made for
   * all), for a batch written by the stream pool (pack-batch.ts); undefined if they do not fit
   * the bound. A chunk whose row exists (held, or being written by another) gets a place but no
   * row. Within a transaction.
   */
  reserveRegion(refs: readonly ChunkRef[]): RegionPlace[] | undefined {
    const bytes = regionBytes(refs);
    if (bytes > this.#capacity) return undefined;
    const region = this.#place(bytes);
    if (region === undefined) return undefined;
    const places: RegionPlace[] = [];
    let position = region.position;
    // Chunks held already get a place too (the pool writes the region whole) but no row: their
    // bytes are allocated until the batch commits and punches them, so they count meanwhile.
    let uncounted = 0;
    for (const ref of refs) {
      const at = { pack: region.pack, position, size: ref.size };
      const reserved = this.#rows.reserve(ref.hash, at, this.#hooks.now(), process.pid);
      if (!reserved) uncounted += footprint(ref.size);
      places.push({ ...at, reserved });
      position += footprint(ref.size);
    }
    if (!this.#hooks.makeRoom(uncounted)) {
      for (const [i, place] of places.entries()) {
        const ref = refs[i];
        if (place.reserved && ref !== undefined) this.#rows.remove(ref.hash);
      }
      return undefined;
    }
    if (this.#appending !== undefined) this.#appending.tail = position;
    return places;
  }

  /** Rows for the incoming chunks (room made for each), then their bytes, in the background. */
  #admit(): void {
    const incoming = this.#incoming;
    this.#incoming = [];
    if (incoming.length === 0 || !this.#rows.open) return;
    const placed = this.#rows.transaction(() => incoming.flatMap((chunk) => this.#reserve(chunk)));
    const kept = new Set(placed.map((chunk) => chunk.key));
    for (const chunk of incoming) if (!kept.has(chunk.key)) this.#forget(chunk);
    for (const run of packRuns(placed)) {
      const writing = this.#writeRun(run);
      this.#writes.add(writing);
      void writing.finally(() => this.#writes.delete(writing));
    }
  }

  /** A row and a place for `chunk`, room made for it; none if held already or no room. */
  #reserve(chunk: Incoming): Placed[] {
    const at = this.#place(chunk.bytes.length);
    if (at === undefined || !this.#rows.reserve(chunk.hash, at, this.#hooks.now(), process.pid)) return [];
    if (!this.#hooks.makeRoom()) {
      this.#rows.remove(chunk.hash);
      return [];
    }
    if (this.#appending !== undefined) this.#appending.tail = at.position + footprint(at.size);
    return [{ ...chunk, at }];
  }

  /** Where a chunk of `size` bytes would go: the appending pack's tail, or a new pack's start. */
  #place(size: number): PackLocation | undefined {
    let pack = this.#appending;
    if (pack !== undefined && pack.tail > 0 && pack.tail + footprint(size) > this.#packBytes) {
      this.seal();
      this.#hooks.removeIfEmpty(pack.id);
      pack = undefined;
    }
    if (pack === undefined) {
      const id = this.#rows.createPack(process.pid);
      try {
        this.#packs.create(id);
      } catch {
        this.#rows.deletePack(id);
        return undefined;
      }
      pack = { id, tail: 0 };
      this.#appending = pack;
    }
    return { pack: pack.id, position: pack.tail, size };
  }

  /** Writes chunks placed back to back in one pack, then makes their rows live (or drops them). */
  async #writeRun(run: Placed[]): Promise<void> {
    const first = run[0];
    const last = run.at(-1);
    if (first === undefined || last === undefined) return;
    const buffers: Buffer[] = [];
    for (const { bytes } of run) {
      buffers.push(bytes);
      const padding = footprint(bytes.length) - bytes.length;
      if (padding > 0) buffers.push(ZEROS.subarray(0, padding));
    }
    const length = last.at.position + footprint(last.at.size) - first.at.position;
    const written = await this.#packs.writeAsync(first.at.pack, first.at.position, buffers, length);
    if (this.#rows.open)
      this.#rows.transaction(() => {
        for (const chunk of run) {
          if (written) this.#rows.commit(chunk.hash);
          else {
            this.#rows.remove(chunk.hash);
            this.#packs.punchUnread(chunk.at);
          }
        }
        if (!written) this.#hooks.removeIfEmpty(first.at.pack);
      });
    for (const chunk of run) {
      this.#forget(chunk);
      if (written) this.#hooks.written(chunk.key, chunk.at);
    }
  }

  #forget(chunk: Incoming): void {
    this.#writing.delete(chunk.key);
    this.#waitingBytes -= chunk.bytes.length;
  }
}

/** `placed` cut where the pack changes: within one, chunks were placed back to back. */
function packRuns(placed: readonly Placed[]): Placed[][] {
  const runs: Placed[][] = [];
  for (const chunk of placed) {
    const run = runs.at(-1);
    if (run !== undefined && run.at(-1)?.at.pack === chunk.at.pack) run.push(chunk);
    else runs.push([chunk]);
  }
  return runs;
}
