/**
 * The pack files of a mount's chunk store: chunks appended back to back (each at a 4 KiB
 * boundary) into files named by their pack id, read back with one pread per run of chunks,
 * their ranges deallocated (a hole punched) when evicted. Files are opened without following a
 * symlink and created exclusively, 0600, in a folder only this user can write to.
 *
 * Descriptors are kept open (a few packs are read again and again) and pinned while an
 * operation uses them: a descriptor is closed only once nothing is reading or writing through
 * it, so its number is never reused under a write.
 */
import { closeSync, constants, openSync, readdirSync, unlinkSync, writev } from "node:fs";
import { join } from "node:path";
import { platformIo } from "../platform/io.js";
import { PRIVATE_MODE } from "../store/private-file.js";
import { readIntoAsync, readWhole } from "./chunk-files.js";

/** Chunks start at multiples of this: an evicted chunk's blocks are freed whole, none shared. */
export const PACK_BLOCK = 4096;
/** Descriptors of packs kept open beyond those in use. */
const OPEN_PACKS = 64;
const PACK_NAME = /^(\d+)\.pack$/;

/** Where a chunk lies: its pack, its position in it and its size. */
export interface PackLocation {
  readonly pack: number;
  readonly position: number;
  readonly size: number;
}

/** `size` rounded up to whole blocks: the room a chunk takes in its pack. */
export function footprint(size: number): number {
  return Math.ceil(size / PACK_BLOCK) * PACK_BLOCK;
}

/** Deallocates a range of an open file; false where the file system or platform cannot. */
export type PunchHole = (fd: number, offset: number, length: number) => boolean;

interface OpenPack {
  readonly fd: number;
  /** Operations using the descriptor now. */
  users: number;
  /** Close once the last user is done (dropped from the open set meanwhile). */
  closing: boolean;
}

export class PackFiles {
  readonly folder: string;
  readonly #punchHole: PunchHole;
  /** Open packs by id, least recently used first. */
  readonly #open = new Map<number, OpenPack>();
  /** Packs dropped from the open set while in use, by descriptor: closed when released. */
  readonly #closing = new Map<number, OpenPack>();

  constructor(folder: string, punchHole: PunchHole = platformIo.punchHole) {
    this.folder = folder;
    this.#punchHole = punchHole;
  }

  /** Creates the (new, empty) file of pack `id`, kept open. */
  create(id: number): void {
    const flags = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    this.#keep(id, openSync(this.#pathOf(id), flags, PRIVATE_MODE));
  }

  /** The descriptor of pack `id`, pinned until release(id); undefined if the pack is gone. */
  acquire(id: number): number | undefined {
    let pack = this.#open.get(id);
    if (pack === undefined) {
      try {
        pack = this.#keep(id, openSync(this.#pathOf(id), constants.O_RDWR | constants.O_NOFOLLOW));
      } catch {
        return undefined;
      }
    } else {
      this.#open.delete(id);
      this.#open.set(id, pack); // most recently used
    }
    pack.users++;
    return pack.fd;
  }

  release(id: number, fd: number): void {
    const open = this.#open.get(id);
    const pack = open?.fd === fd ? open : this.#closing.get(fd);
    if (pack === undefined) return;
    pack.users--;
    if (pack.closing && pack.users === 0) {
      this.#closing.delete(fd);
      closeSync(fd);
    }
  }

  /** The `size` bytes at `position` of pack `id` (unverified), or undefined if they cannot be read. */
  readSync(at: PackLocation): Buffer | undefined {
    const fd = this.acquire(at.pack);
    if (fd === undefined) return undefined;
    try {
      return readWhole(fd, at.position, at.size);
    } finally {
      this.release(at.pack, fd);
    }
  }

  /**
   * `into.length` bytes from `position` of pack `pack` through the thread pool; false if they
   * cannot all be read.
   */
  readAsync(pack: number, position: number, into: Buffer): Promise<boolean> {
    const fd = this.acquire(pack);
    if (fd === undefined) return Promise.resolve(false);
    return new Promise((resolve) =>
      readIntoAsync(fd, into, position, (whole) => {
        this.release(pack, fd);
        resolve(whole);
      }),
    );
  }

  /** Writes `buffers` back to back from `position` of pack `pack`, through the thread pool. */
  writeAsync(pack: number, position: number, buffers: Buffer[], length: number): Promise<boolean> {
    const fd = this.acquire(pack);
    if (fd === undefined) return Promise.resolve(false);
    return new Promise((resolve) => {
      // libuv continues a short pwritev itself; fewer bytes than asked means it failed.
      writev(fd, buffers, position, (error, written) => {
        this.release(pack, fd);
        resolve(error === null && written === length);
      });
    });
  }

  /** Deallocates a chunk's range; false where it stays allocated (no hole punching here). */
  punch(at: PackLocation): boolean {
    const fd = this.acquire(at.pack);
    if (fd === undefined) return true; // the pack is gone, and its blocks with it
    try {
      return this.#punchHole(fd, at.position, footprint(at.size));
    } catch {
      return false;
    } finally {
      this.release(at.pack, fd);
    }
  }

  /** Removes pack `id`'s file (descriptors still in use keep it readable until released). */
  remove(id: number): void {
    const pack = this.#open.get(id);
    if (pack !== undefined) this.#drop(id, pack);
    try {
      unlinkSync(this.#pathOf(id));
    } catch {
      // gone already
    }
  }

  /** The ids of the pack files in the folder. */
  list(): number[] {
    const ids: number[] = [];
    for (const name of readdirSync(this.folder)) {
      const id = PACK_NAME.exec(name)?.[1];
      if (id !== undefined) ids.push(Number(id));
    }
    return ids;
  }

  /** Closes the descriptors not in use; those in use close when released. */
  close(): void {
    for (const [id, pack] of this.#open) this.#drop(id, pack);
  }

  #keep(id: number, fd: number): OpenPack {
    const pack: OpenPack = { fd, users: 0, closing: false };
    this.#open.set(id, pack);
    for (const [oldest, old] of this.#open) {
      if (this.#open.size <= OPEN_PACKS) break;
      this.#drop(oldest, old);
    }
    return pack;
  }

  #drop(id: number, pack: OpenPack): void {
    this.#open.delete(id);
    pack.closing = true;
    if (pack.users === 0) closeSync(pack.fd);
    else this.#closing.set(pack.fd, pack);
  }

  #pathOf(id: number): string {
    return join(this.folder, `${id}.pack`);
  }
}
