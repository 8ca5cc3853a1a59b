/**
 * The pack files of a mount's chunk store: chunks appended back to back (each at a 4 KiB
 * boundary) into files named by their pack id, read back with one pread per run of chunks,
 * their ranges deallocated (a hole punched) when evicted. Files are opened without following a
 * symlink and created exclusively, 0600, in a folder only this user can write to.
 *
 * Descriptors are kept open (a few packs are read again and again) and pinned while an
 * operation uses them: a descriptor is closed only once nothing is reading or writing through
 * it, so its number is never reused under a write.
 *
 * Bytes verified once are sent to the kernel straight from the pack afterwards (fuse-session.ts),
 * so nothing may punch them meanwhile, in this process or another mount process sharing the
 * store. A process reading a pack holds a shared lock (flock) on it; an evicted range is punched
 * only under an exclusive lock taken without waiting, through a descriptor of its own, so while
 * any process (this one too) reads the pack, its evicted ranges wait (ChunkStore records them and
 * punches them later). A pack not read for LOCK_IDLE_MS is closed, and its lock goes with it, so a
 * mount left open holds none (nor the blocks of a pack removed meanwhile); a pack with ranges
 * waiting is let go as soon as nothing uses it. Each time a pack's descriptor is closed its
 * generation ends, and bytes verified under it are no longer vouched for. Without locks, evicted
 * ranges are not punched at all (they go with their pack, as where holes cannot be punched).
 */
import { closeSync, constants, openSync, readdirSync, unlinkSync, writev } from "node:fs";
import { join } from "node:path";
import { BLOCK_BYTES, type FileLock, platformIo } from "../platform/io.js";
import { PRIVATE_MODE } from "../store/private-file.js";
import { readIntoAsync, readWhole } from "./chunk-files.js";

/** Chunks start at multiples of this: an evicted chunk's blocks are freed whole, none shared. */
export const PACK_BLOCK = BLOCK_BYTES;
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
/** flock on an open file (platform/io.ts); undefined where there are no locks. */
export type LockFile = ((fd: number, kind: FileLock) => boolean) | undefined;

/** A pack not read for this long is closed, letting go of its lock: another process may punch it. */
export const LOCK_IDLE_MS = 5000;

/** What became of evicted ranges given to punchEvicted. */
export type Punched = "punched" | "busy" | "kept";

interface OpenPack {
  readonly fd: number;
  /** Operations using the descriptor now. */
  users: number;
  /** Close once the last user is done (dropped from the open set meanwhile). */
  closing: boolean;
  /** The generation of its lock, while this process holds it (shared); undefined while not. */
  locked: number | undefined;
  /** When it was last read, for letting go of an idle lock (ms). */
  lastRead: number;
}

/** Lock generations, never reused within a process. */
let nextGeneration = 1;

export class PackFiles {
  readonly folder: string;
  readonly #punchHole: PunchHole;
  readonly #lockFile: LockFile;
  /** Open packs by id, least recently used first. */
  readonly #open = new Map<number, OpenPack>();
  /** Packs dropped from the open set while in use, by descriptor: closed when released. */
  readonly #closing = new Map<number, OpenPack>();

  constructor(folder: string, punchHole: PunchHole = platformIo.punchHole, lockFile?: LockFile) {
    this.folder = folder;
    this.#punchHole = punchHole;
    this.#lockFile = lockFile;
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

  /**
   * Deallocates a range no process reads: one reserved and never made live. False where it stays
   * allocated (no hole punching here).
   */
  punchUnread(at: PackLocation): boolean {
    const fd = this.acquire(at.pack);
    if (fd === undefined) return true; // the pack is gone, and its blocks with it
    try {
      return this.#punch(fd, at);
    } finally {
      this.release(at.pack, fd);
    }
  }

  /**
   * Deallocates evicted ranges of pack `pack`, unless a process (this one too) reads the pack
   * now: "busy" then, and they stay until asked again. "kept" where holes cannot be punched.
   */
  punchEvicted(pack: number, ranges: readonly PackLocation[]): Punched {
    // Without locks, nothing says whether another mount process sends these bytes from the pack.
    if (this.#lockFile === undefined) return "kept";
    let fd: number;
    try {
      fd = openSync(this.#pathOf(pack), constants.O_RDWR | constants.O_NOFOLLOW);
    } catch {
      return "punched"; // the pack is gone, and its blocks with it
    }
    try {
      // A descriptor of its own: this process's shared lock on the pack makes it wait too.
      if (!this.#lockFile(fd, "exclusive")) return "busy";
      return ranges.every((at) => this.#punch(fd, at)) ? "punched" : "kept";
    } finally {
      closeSync(fd); // and the exclusive lock with it
    }
  }

  /**
   * Locks pack `id` against punching while it is read (shared with other readers): the generation
   * under which bytes read from it now can be vouched for, until heldFd says otherwise; undefined
   * where there are no locks, or the pack is gone. Waits only while another process punches it.
   */
  lockForReading(id: number): number | undefined {
    if (this.#lockFile === undefined) return undefined;
    const fd = this.acquire(id);
    if (fd === undefined) return undefined;
    try {
      const pack = this.#open.get(id);
      if (pack === undefined || pack.fd !== fd) return undefined;
      if (pack.locked === undefined && this.#lockFile(fd, "shared")) pack.locked = nextGeneration++;
      pack.lastRead = Date.now();
      return pack.locked;
    } finally {
      this.release(id, fd);
    }
  }

  /**
   * The descriptor of pack `id` if its lock is still the one of `generation` (nothing has punched
   * it since): for use at once, within this turn of the event loop (it is not pinned).
   */
  heldFd(id: number, generation: number): number | undefined {
    const pack = this.#open.get(id);
    if (pack === undefined || pack.locked !== generation) return undefined;
    pack.lastRead = Date.now();
    return pack.fd;
  }

  /**
   * Closes the packs this process locked and has not read since `before` (ms): their locks go,
   * and so do the descriptors, which would keep an unlinked pack's blocks allocated.
   */
  closeIdle(before: number): void {
    for (const [id, pack] of this.#open)
      if (pack.locked !== undefined && pack.users === 0 && pack.lastRead < before) this.#drop(id, pack);
  }

  /** Closes pack `id` if nothing uses it now: another process may then punch it (its lock goes). */
  letGo(id: number): void {
    const pack = this.#open.get(id);
    if (pack !== undefined && pack.users === 0) this.#drop(id, pack);
  }

  #punch(fd: number, at: PackLocation): boolean {
    try {
      return this.#punchHole(fd, at.position, footprint(at.size));
    } catch {
      return false;
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
    const pack: OpenPack = { fd, users: 0, closing: false, locked: undefined, lastRead: 0 };
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
    pack.locked = undefined; // closing the descriptor lets go of the lock
    if (pack.users === 0) closeSync(pack.fd);
    else this.#closing.set(pack.fd, pack);
  }

  #pathOf(id: number): string {
    return join(this.folder, `${id}.pack`);
  }
}
