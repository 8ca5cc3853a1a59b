/**
 * A reader run as its own process against a file on a mount, so that nothing of the benchmark's
 * own event loop sits between the read and its clock: first the time to the file's first byte
 * (open and a 4 KiB read at offset 0), then `count` 4 KiB preads at 4 KiB-aligned offsets drawn
 * from `seed`, so every mount is asked for the same bytes in the same order.
 *
 *   node random-reads.js FILE COUNT SEED   -> one JSON line: RandomReadReport
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const READ_SIZE = 4096;

export interface RandomReadReport {
  firstByteMs: number;
  /** One per read, in the order made. */
  latenciesMs: number[];
}

/** A small seeded generator (mulberry32): the same offsets on every machine and run. */
export function seededOffsets(fileBytes: number, count: number, seed: number): number[] {
  const pages = Math.max(1, Math.floor((fileBytes - READ_SIZE) / READ_SIZE) + 1);
  let state = seed >>> 0;
  const offsets: number[] = [];
  for (let i = 0; i < count; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const unit = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    offsets.push(Math.floor(unit * pages) * READ_SIZE);
  }
  return offsets;
}

export function readRandomly(path: string, count: number, seed: number): RandomReadReport {
  const buffer = Buffer.alloc(READ_SIZE);
  const opened = performance.now();
  const fd = openSync(path, "r");
  try {
    const fileBytes = fstatSync(fd).size;
    readExactly(fd, buffer, 0, fileBytes);
    const firstByteMs = performance.now() - opened;
    const latenciesMs: number[] = [];
    for (const offset of seededOffsets(fileBytes, count, seed)) {
      const started = performance.now();
      readExactly(fd, buffer, offset, fileBytes);
      latenciesMs.push(performance.now() - started);
    }
    return { firstByteMs, latenciesMs };
  } finally {
    closeSync(fd);
  }
}

/** A short read where the file has the bytes is a broken mount, not a figure. */
function readExactly(fd: number, buffer: Buffer, offset: number, fileBytes: number): void {
  const expected = Math.min(READ_SIZE, fileBytes - offset);
  const got = readSync(fd, buffer, 0, READ_SIZE, offset);
  if (got !== expected) throw new Error(`read ${got} bytes at ${offset}, expected ${expected}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [path, count, seed] = process.argv.slice(2);
  if (path === undefined || count === undefined || seed === undefined) {
    console.error("usage: random-reads FILE COUNT SEED");
    process.exit(2);
  }
  console.log(JSON.stringify(readRandomly(path, Number(count), Number(seed))));
}
