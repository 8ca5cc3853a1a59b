/**
 * A read-ahead batch fetched straight into the chunk store: the stream pool writes each verified
 * chunk at its reserved place in this process's pack (ChunkWrite.at), so a fetched chunk is
 * written once, where the cache keeps it, instead of into a scratch file, read back and written
 * again into the store.
 *
 * The region's rows are reserved before the pool is lent the pack's descriptor (counted in the
 * bound, owned by this process: a crash leaves reservations the next open removes). A batch that
 * completes makes them live and hands the chunks over where they lie (StoredChunk: the pack is
 * locked for reading from before the pool writes, so the bytes it verified are still the ones
 * there), or, where packs cannot be locked, from one read of the region (the page cache: the
 * pool has just written it). A failed batch may still be written by a stream thread
 * until its pool has closed (stream-protocol.ts), so it is abandoned (rows dropped, range
 * punched) and the descriptor released only then.
 */
import type { ChunkRef } from "../wire/messages.js";
import { readIntoAsync } from "./chunk-files.js";
import type { ChunkRows } from "./chunk-rows.js";
import { footprint, type PackFiles, type PackLocation } from "./pack-files.js";
import { type Chunk, StoredChunk } from "./stored-chunk.js";

/** A chunk's place in the region, and whether its row is this batch's (else another has the chunk). */
export interface RegionPlace extends PackLocation {
  readonly reserved: boolean;
}

/** What a batch needs of its store, called within the store's transactions where they change rows. */
export interface PackBatchHooks {
  /** The chunk's row is live, at `at`. */
  written(key: string, at: PackLocation): void;
  /** A range no row holds any longer: punched once no process reads its pack. */
  evicted(at: PackLocation): void;
  removeIfEmpty(pack: number): void;
}

export class PackBatch {
  /** The pack's descriptor, pinned until the batch is committed or abandoned. */
  readonly fd: number;
  /** Where each chunk goes in `fd`, in the order asked. */
  readonly positions: readonly number[];
  readonly #refs: readonly ChunkRef[];
  readonly #places: readonly RegionPlace[];
  readonly #rows: ChunkRows;
  readonly #packs: PackFiles;
  readonly #hooks: PackBatchHooks;
  /** The generation of the pack's lock taken before the pool writes; undefined: no locks here. */
  readonly #generation: number | undefined;
  #settled = false;

  constructor(
    refs: readonly ChunkRef[],
    places: readonly RegionPlace[],
    fd: number,
    store: { rows: ChunkRows; packs: PackFiles; hooks: PackBatchHooks; generation: number | undefined },
  ) {
    this.#refs = refs;
    this.#places = places;
    this.fd = fd;
    this.positions = places.map((place) => place.position);
    this.#rows = store.rows;
    this.#packs = store.packs;
    this.#hooks = store.hooks;
    this.#generation = store.generation;
  }

  /**
   * The pool wrote every chunk: their rows go live, and the chunks (verified by the pool) come
   * back in the order asked, where they lie. Where the pack's lock did not hold throughout (no
   * locks here, or the pack was closed meanwhile) they are views of one read of the region
   * instead, read in the thread pool (a copy of every fetched byte on the main thread would take
   * its time from the replies to the kernel's reads); undefined if that read fails (the batch is
   * then abandoned). The region's own rows are this process's reservations until now, which no
   * other process evicts.
   */
  async commit(): Promise<Chunk[] | undefined> {
    if (this.#settled) return undefined;
    const generation = this.#generation;
    // Locked all along (this batch kept the pack open): the chunks are where the pool put them.
    const held =
      generation !== undefined && this.#packs.heldFd(this.#region().pack, generation) !== undefined;
    const region = held ? undefined : await this.#readRegion();
    if (this.#settled) return undefined;
    if (!held && region === undefined) {
      this.abandon();
      return undefined;
    }
    this.#settled = true;
    const start = this.#start();
    if (this.#rows.open)
      this.#rows.transaction(() => {
        for (const [i, place] of this.#places.entries()) {
          const ref = this.#refs[i];
          if (ref === undefined) continue;
          if (place.reserved) this.#rows.commit(ref.hash);
          // Another process keeps this chunk: the copy here goes, once nothing reads it from here.
          else if (region === undefined) this.#hooks.evicted(place);
          else this.#packs.punchUnread(place);
        }
      });
    this.#places.forEach((place, i) => {
      const ref = this.#refs[i];
      if (place.reserved && ref !== undefined) this.#hooks.written(ref.hash.toString("hex"), place);
    });
    this.#release();
    return this.#places.map((place) =>
      region === undefined
        ? new StoredChunk(place, generation ?? 0, this.#packs)
        : region.subarray(place.position - start, place.position - start + place.size),
    );
  }

  /** Nothing writes into the region any longer and its chunks are not kept: rows dropped, range punched. */
  abandon(): void {
    if (this.#settled) return;
    this.#settled = true;
    if (this.#rows.open)
      this.#rows.transaction(() => {
        this.#places.forEach((place, i) => {
          const ref = this.#refs[i];
          if (place.reserved && ref !== undefined) this.#rows.remove(ref.hash);
        });
        this.#packs.punchUnread(this.#region());
        this.#hooks.removeIfEmpty(this.#region().pack);
      });
    this.#release();
  }

  /** The region's bytes, read through the thread pool; undefined if they cannot all be read. */
  #readRegion(): Promise<Buffer | undefined> {
    const { position, size } = this.#region();
    const bytes = Buffer.allocUnsafe(size);
    return new Promise((resolve) =>
      readIntoAsync(this.fd, bytes, position, (whole) => resolve(whole ? bytes : undefined)),
    );
  }

  /** The range the batch's chunks take, from the first one's start to the last one's end. */
  #region(): PackLocation {
    const first = this.#places[0];
    const last = this.#places.at(-1);
    if (first === undefined || last === undefined) return { pack: 0, position: 0, size: 0 };
    return { pack: first.pack, position: first.position, size: last.position + last.size - first.position };
  }

  #start(): number {
    return this.#places[0]?.position ?? 0;
  }

  #release(): void {
    this.#packs.release(this.#region().pack, this.fd);
  }
}

/** Bytes the chunks `refs` take placed back to back in a pack. */
export function regionBytes(refs: readonly ChunkRef[]): number {
  let bytes = 0;
  for (const ref of refs) bytes += footprint(ref.size);
  return bytes;
}
