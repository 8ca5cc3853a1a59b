/**
 * Open files shared by the requests of one connection, keyed by wire path, so that serving a
 * 1 GiB file in 64 KiB chunks resolves and opens it once, not 16,384 times. Least recently used
 * files are closed beyond `capacity`, but never while a read is using them. Opening and closing
 * are synchronous (see engine/file-io.ts: a thread-pool trip costs more than the call).
 */
import { constants, openSync } from "node:fs";
import { closeQuietly } from "../engine/file-io.js";
import { toTeleportError } from "../errors.js";
import { platformIo } from "../platform/io.js";

interface Slot {
  fd: number;
  users: number;
  evicted: boolean;
}

export class OpenFiles {
  readonly #slots = new Map<string, Slot>();
  readonly #resolve: (wirePath: string) => string;
  readonly #capacity: number;

  /** `resolve` maps a wire path to the absolute path of a regular file inside the share, or throws. */
  constructor(resolve: (wirePath: string) => string, capacity = 32) {
    this.#resolve = resolve;
    this.#capacity = capacity;
  }

  /** Runs `use` with the file at `wirePath` open as `fd`. */
  async with<T>(wirePath: string, use: (fd: number) => Promise<T>): Promise<T> {
    let slot = this.#slots.get(wirePath);
    if (slot === undefined) {
      slot = { fd: this.#open(wirePath), users: 0, evicted: false };
      this.#slots.set(wirePath, slot);
      this.#evictBeyondCapacity();
    } else {
      // Re-insert to mark it most recently used.
      this.#slots.delete(wirePath);
      this.#slots.set(wirePath, slot);
    }
    slot.users++;
    try {
      return await use(slot.fd);
    } finally {
      slot.users--;
      if (slot.evicted && slot.users === 0) closeQuietly(slot.fd);
    }
  }

  /** Runs `use` with the files at `wirePaths` open, as `fds` in the same order. */
  withAll<T>(
    wirePaths: readonly string[],
    use: (fds: number[]) => Promise<T>,
    fds: number[] = [],
  ): Promise<T> {
    const next = wirePaths[fds.length];
    if (next === undefined) return use(fds);
    return this.with(next, (fd) => this.withAll(wirePaths, use, [...fds, fd]));
  }

  #open(wirePath: string): number {
    return openFileAt(this.#resolve(wirePath), wirePath);
  }

  #evictBeyondCapacity(): void {
    for (const [path, slot] of this.#slots) {
      if (this.#slots.size <= this.#capacity) break;
      this.#slots.delete(path);
      slot.evicted = true;
      if (slot.users === 0) closeQuietly(slot.fd);
    }
  }

  closeAll(): void {
    for (const slot of this.#slots.values()) {
      slot.evicted = true;
      if (slot.users === 0) closeQuietly(slot.fd);
    }
    this.#slots.clear();
  }
}

/**
 * Opens the file at `absolutePath`, a path already resolved inside the share, for reading: a
 * symlink in its place now was put there since, and is refused. Errors name `wirePath`.
 */
export function openFileAt(absolutePath: string, wirePath: string): number {
  try {
    const fd = openSync(absolutePath, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
    platformIo.adviseSequential(fd); // chunks are read in order: more read-ahead from a cold disk
    return fd;
  } catch (err) {
    throw toTeleportError(err, `"${wirePath}"`);
  }
}
