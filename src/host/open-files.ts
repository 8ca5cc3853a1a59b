/**
 * Open file handles shared by the requests of one connection, so that serving a 1 GiB file in
 * 1 MiB chunks opens it once, not 1024 times. Least recently used handles are closed beyond
 * `capacity`, but never while a read is using them.
 */
import { type FileHandle, open } from "node:fs/promises";

interface Slot {
  handle: Promise<FileHandle>;
  users: number;
  evicted: boolean;
}

export class OpenFiles {
  readonly #slots = new Map<string, Slot>();
  readonly #capacity: number;

  constructor(capacity = 32) {
    this.#capacity = capacity;
  }

  /** Runs `use` with an open handle for `absolutePath`. */
  async with<T>(absolutePath: string, use: (handle: FileHandle) => Promise<T>): Promise<T> {
    let slot = this.#slots.get(absolutePath);
    if (slot === undefined) {
      slot = { handle: open(absolutePath, "r"), users: 0, evicted: false };
      this.#slots.set(absolutePath, slot);
      slot.handle.catch(() => this.#slots.delete(absolutePath));
      this.#evictBeyondCapacity();
    } else {
      // Re-insert to mark it most recently used.
      this.#slots.delete(absolutePath);
      this.#slots.set(absolutePath, slot);
    }
    slot.users++;
    try {
      return await use(await slot.handle);
    } finally {
      slot.users--;
      if (slot.evicted && slot.users === 0) this.#closeSlot(slot);
    }
  }

  #evictBeyondCapacity(): void {
    for (const [path, slot] of this.#slots) {
      if (this.#slots.size <= this.#capacity) break;
      this.#slots.delete(path);
      slot.evicted = true;
      if (slot.users === 0) this.#closeSlot(slot);
    }
  }

  #closeSlot(slot: Slot): void {
    slot.handle.then((handle) => handle.close()).catch(() => {});
  }

  closeAll(): void {
    for (const slot of this.#slots.values()) {
      slot.evicted = true;
      if (slot.users === 0) this.#closeSlot(slot);
    }
    this.#slots.clear();
  }
}
