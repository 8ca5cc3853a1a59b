/**
 * Positional reads that skip libuv's thread pool when they are small, and a quiet close. A trip
 * through the pool costs a thread wake-up each way, several times a small read from the page
 * cache (docs/decisions.md, "Small file operations are synchronous"). A small read blocks the
 * event loop for a few microseconds; a large one goes through the pool, where the copy is the
 * cost and a cold disk read does not stall other work.
 */
import { closeSync, read, readFileSync, readSync, readv, readvSync } from "node:fs";

/** Reads of at most this many bytes are synchronous. */
export const SYNC_READ_BYTES = 256 * 1024;

/** Reads up to `length` bytes at `position` into `buffer` at `offset`; resolves to bytes read. */
export function readAt(
  fd: number,
  buffer: Buffer,
  offset: number,
  length: number,
  position: number,
): Promise<number> {
  if (length <= SYNC_READ_BYTES) {
    try {
      return Promise.resolve(readSync(fd, buffer, offset, length, position));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return new Promise((resolve, reject) => {
    read(fd, buffer, offset, length, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead)));
  });
}

/** Reads into `buffers` back to back from `position`; resolves to bytes read. */
export function readvAt(fd: number, buffers: Buffer[], position: number): Promise<number> {
  let total = 0;
  for (const buffer of buffers) total += buffer.length;
  if (total <= SYNC_READ_BYTES) {
    try {
      return Promise.resolve(readvSync(fd, buffers, position));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return new Promise((resolve, reject) => {
    readv(fd, buffers, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead)));
  });
}

/** Closes `fd`, ignoring a descriptor already closed; negative ones are none at all. */
export function closeQuietly(fd: number): void {
  if (fd < 0) return;
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/**
 * This process's limit on open file descriptors (Node raises the soft limit to the hard one at
 * start), from /proc on Linux; elsewhere the common default of 1,024.
 */
export function descriptorLimit(): number {
  try {
    const line = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "latin1"));
    if (line?.[1] !== undefined) return Number(line[1]);
  } catch {
    // not Linux
  }
  return 1024;
}
