/**
 * A mount cache folder seen from outside the store: its pack files, the bytes they take on disk
 * (allocated blocks: evicted ranges are holes) and where a chunk lies, from the store's rows.
 */
import { readdir, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import type Database from "better-sqlite3";
import type { Chunk } from "../../src/mount/stored-chunk.js";

export interface PackFile {
  path: string;
  id: number;
  /** Bytes allocated on disk. */
  allocated: number;
}

/** The pack files of a cache folder (one removed meanwhile is left out). */
export async function packFiles(folder: string): Promise<PackFile[]> {
  const packs: PackFile[] = [];
  for (const name of await readdir(folder).catch(() => [])) {
    const id = /^(\d+)\.pack$/.exec(name)?.[1];
    if (id === undefined) continue;
    const info = await stat(join(folder, name)).catch(() => undefined);
    if (info !== undefined)
      packs.push({ path: join(folder, name), id: Number(id), allocated: info.blocks * 512 });
  }
  return packs.sort((a, b) => a.id - b.id);
}

/**
 * Bytes the cache's packs take on disk. A store at work frees before it writes: evicted ranges
 * (in older packs) are punched before new chunks land (in newer ones). The packs are looked at one
 * by one, newest first, so that a pack seen before a punch and another seen after the write it made
 * room for are never added up: a sum larger than the bound is one the store really allocated.
 */
export async function allocatedBytes(folder: string): Promise<number> {
  const packs = await packFiles(folder);
  let bytes = 0;
  for (const pack of packs.reverse())
    bytes += (await stat(pack.path).catch(() => ({ blocks: 0 }))).blocks * 512;
  return bytes;
}

/** The store's database, opened beside it (tests read rows, or leave what a crash would). */
export function openRows(folder: string): Database.Database {
  return new (createRequire(import.meta.url)("better-sqlite3"))(
    join(folder, "chunks.db"),
  ) as Database.Database;
}

export interface ChunkPlace {
  hash: Buffer;
  path: string;
  position: number;
  size: number;
}

/** Where each live chunk of the cache lies, in pack order. */
export function chunkPlaces(folder: string): ChunkPlace[] {
  const db = openRows(folder);
  try {
    const rows = db
      .prepare("SELECT hash, pack, position, size FROM chunks WHERE owner IS NULL ORDER BY pack, position")
      .all() as Array<{ hash: Buffer; pack: number; position: number; size: number }>;
    return rows.map(({ hash, pack, position, size }) => ({
      hash,
      path: join(folder, `${pack}.pack`),
      position,
      size,
    }));
  } finally {
    db.close();
  }
}

/** A chunk's bytes: in memory already, or copied out of the pack it lies in (undefined: gone). */
export function chunkBytes(chunk: Chunk | undefined): Buffer | undefined {
  return chunk === undefined || Buffer.isBuffer(chunk) ? chunk : chunk.bytes();
}
