/**
 * Open file handles shared by the requests of one connection, keyed by wire path, so that serving
 * a 1 GiB file in 1 MiB chunks resolves and opens it once, not 1024 times. Least recently used
 * handles are closed beyond `capacity`, but never while a read is using them.
 */
import { type FileHandle, open } from "node:fs/promises";

interface Slot {
  handle: Promise<FileHandle>;
  users: number;
  evicted: boolean;
}

export class OpenFiles {
  readonly #slots = new Map<string, Slot>();
  readonly #resolve: (wirePath: string) => Promise<string>;
  readonly #capacity: number;

  /** `resolve` maps a wire path to the absolute path of a regular file inside the share, or throws. */
  constructor(resolve: (wirePath: string) => Promise<string>, capacity = 32) {
    this.#resolve = resolve;
    this.#capacity = capacity;
  }

  /** Runs `use` with an open handle for the file at `wirePath`. */
  async with<T>(wirePath: string, use: (handle: FileHandle) => Promise<T>): Promise<T> {
    let slot = this.#slots.get(wirePath);
    if (slot === undefined) {
      slot = { handle: this.#resolve(wirePath).then((path) => open(path, "r")), users: 0, evicted: false };
      this.#slots.set(wirePath, slot);
      slot.handle.catch(() => this.#slots.delete(wirePath));
      this.#evictBeyondCapacity();
    } else {
      // Re-insert to mark it most recently used.
      this.#slots.delete(wirePath);
      this.#slots.set(wirePath, slot);
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
