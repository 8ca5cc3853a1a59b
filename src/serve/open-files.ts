/**
 * Open files shared by the requests of one connection, keyed by wire path, so that serving a
 * 1 GiB file in 64 KiB chunks opens it once, not 16,384 times. Least recently used
 * files are closed beyond `capacity`, but never while a read is using them. Opening and closing
 * are synchronous (see engine/file-io.ts: a thread-pool trip costs more than the call).
 */
import { closeQuietly } from "../engine/file-io.js";
import { platformIo } from "../platform/io.js";
import type { OpenedFile } from "./share.js";

interface Slot {
  file: OpenedFile;
  users: number;
  evicted: boolean;
}

export class OpenFiles {
  readonly #slots = new Map<string, Slot>();
  readonly #open: (wirePath: string) => OpenedFile;
  readonly #capacity: number;

  /** `open` opens the regular file at a wire path beneath the share root (Share.openFile), or throws. */
  constructor(open: (wirePath: string) => OpenedFile, capacity = 32) {
    this.#open = open;
    this.#capacity = capacity;
  }

  /** Runs `use` with the file at `wirePath` open as `fd`. */
  async with<T>(wirePath: string, use: (fd: number) => Promise<T>): Promise<T> {
    const slot = this.#slot(wirePath);
    slot.users++;
    try {
      return await use(slot.file.fd);
    } finally {
      slot.users--;
      if (slot.evicted && slot.users === 0) closeQuietly(slot.file.fd);
    }
  }

  #slot(wirePath: string): Slot {
    let slot = this.#slots.get(wirePath);
    if (slot === undefined) {
      slot = { file: this.#open(wirePath), users: 0, evicted: false };
      platformIo.adviseSequential(slot.file.fd); // chunks are read in order: more read-ahead from a cold disk
      this.#slots.set(wirePath, slot);
      this.#evictBeyondCapacity();
    } else {
      // Re-insert to mark it most recently used.
      this.#slots.delete(wirePath);
      this.#slots.set(wirePath, slot);
    }
    return slot;
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

  #evictBeyondCapacity(): void {
    for (const [path, slot] of this.#slots) {
      if (this.#slots.size <= this.#capacity) break;
      this.#slots.delete(path);
      slot.evicted = true;
      if (slot.users === 0) closeQuietly(slot.file.fd);
    }
  }

  closeAll(): void {
    for (const slot of this.#slots.values()) {
      slot.evicted = true;
      if (slot.users === 0) closeQuietly(slot.file.fd);
    }
    this.#slots.clear();
  }
}
