/**
 * A read-only mount: answers the kernel's requests from an InodeTable and a byte source, each
 * request exactly once and by a deadline (EIO past it; EINTR once its reader is interrupted), so
 * no reader ever waits forever. With FolderListings, folders are listed again as they age or
 * change on the host before they are answered, and the kernel's caches are told of differences.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync } from "node:fs";
import { resolve } from "node:path";
import { ErrorCode, TeleportError } from "../errors.js";
import {
  ATTR_FIELDS,
  type FileRange,
  type FuseAddon,
  FuseOp,
  type FuseRequest,
  loadFuse,
  MountFlag,
  type MountHandle,
} from "./binding.js";
import type { FolderListings, KernelCache } from "./folder-listings.js";
import type { Inode, InodeTable } from "./inode-table.js";
import { untilAborted } from "./until-aborted.js";

const ENOENT = 2;
const EIO = 5;
const EINTR = 4;
const EINVAL = 22;
const ENOSYS = 38;
/** An inode the tree no longer holds (its file was replaced or removed on the host). */
const ESTALE = 116;

/**
 * Bytes of a file this process holds, vouched for until they may have changed: opened only as
 * the reply is sent, in the same turn, so nothing can change them in between.
 */
export interface HeldRange {
  readonly length: number;
  /** The range in its file now; undefined once its bytes are no longer vouched for. */
  open(): FileRange | undefined;
}

/** A piece of a read's answer: bytes, or a range of a file they are sent from. */
export type ReadPiece = Uint8Array | HeldRange;

/**
 * Reads `length` bytes of a file at `offset` (fewer only at its end), as one array or as pieces
 * to be sent back to back; must never return wrong bytes.
 */
export type ReadFile = (
  node: Inode,
  offset: number,
  length: number,
  signal: AbortSignal,
) => Promise<Uint8Array | readonly ReadPiece[]>;

export interface MountOptions {
  /** How long the kernel may keep names and attributes without asking again (s), without listings. */
  ttlSeconds?: number;
  /** A request not answered by then gets EIO (ms). */
  requestTimeoutMs?: number;
  /** Keeps the tree in step with the host; without, the tree is fixed. */
  listings?: FolderListings;
  /** The mountpoint as openMountpoint opened it (closed by the caller); else it is opened here. */
  mountpointFd?: number;
}

const DEFAULT_TTL_SECONDS = 60;
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/**
 * A read whose held ranges moved away before its reply (evicted meanwhile) is made again, at most
 * this many times in all: then it fails (EIO) rather than chase a cache too small for it.
 */
const READ_ATTEMPTS = 3;
/** Kernel reads up to 1 MiB (max_pages) and its readahead asks as much. */
const MAX_READ_BYTES = 1 << 20;
/**
 * Bytes a directory entry takes in a readdir reply, before its name (struct fuse_dirent; with
 * readdirplus, the fuse_entry_out before it): entries are handed to the addon only as many as
 * fit, as each reply fills one kernel page of a folder that may hold thousands.
 */
const DIRENT_BYTES = 24;
const DIRENTPLUS_BYTES = 152;
const KERNEL_OPTIONS = "ro,default_permissions,fsname=teleport,subtype=teleport";

/**
 * The mountpoint opened as the folder it is now, never through a symlink: the mount lands on
 * this very folder (FuseAddon.mount), so what is checked is what is mounted on, whatever another
 * local user puts at its path meanwhile. A symlink, a file or nothing there is a usage error.
 */
export function openMountpoint(mountpoint: string): number {
  let fd: number;
  try {
    fd = openSync(mountpoint, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (cause) {
    // O_NOFOLLOW|O_DIRECTORY on a symlink fails ENOTDIR (or ELOOP): which it was, for the message only.
    const why = isSymlink(mountpoint)
      ? "is a symbolic link: mount on the folder itself"
      : "is not a folder: mount on an existing (empty) folder";
    throw new TeleportError(ErrorCode.USAGE, `${mountpoint} ${why}`, { cause });
  }
  if (!fstatSync(fd).isDirectory()) {
    closeSync(fd);
    throw new TeleportError(
      ErrorCode.USAGE,
      `${mountpoint} is not a folder: mount on an existing (empty) folder`,
    );
  }
  return fd;
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Why a pending request was answered early. */
class Interrupted extends Error {}

export class FuseSession implements KernelCache {
  readonly #fuse: FuseAddon;
  readonly #table: InodeTable;
  readonly #read: ReadFile;
  readonly #listings: FolderListings | undefined;
  readonly #ttl: number;
  readonly #timeoutMs: number;
  readonly #abort = new AbortController();
  /**
   * A folder's entries as its readdir from offset 0 listed them, by folder inode: the later
   * offsets of that read come from the same list (names changing under a reader's offsets would
   * skip or repeat some), without copying the folder at every page.
   */
  readonly #dirLists = new Map<number, readonly (readonly [string, Inode])[]>();
  /** Requests being answered asynchronously, by sequence number: an INTERRUPT aborts one. */
  readonly #pending = new Map<number, AbortController>();
  #handle: MountHandle | undefined;
  #resolveClosed: () => void = () => {};
  /** Settles once the kernel connection has ended and the session is destroyed. */
  readonly closed: Promise<void>;

  private constructor(table: InodeTable, read: ReadFile, options: MountOptions) {
    this.#fuse = loadFuse();
    this.#table = table;
    this.#read = read;
    this.#listings = options.listings;
    this.#ttl = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    this.#timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  /** Mounts `table` at `mountpoint`; throws FUSE_UNAVAILABLE where this machine cannot mount. */
  static mount(
    mountpoint: string,
    table: InodeTable,
    read: ReadFile,
    options: MountOptions = {},
  ): FuseSession {
    const session = new FuseSession(table, read, options);
    // Content is immutable per inode (a changed file gets a new one): keep page and directory
    // caches, no open round trips; FolderListings invalidates what the host changed.
    const flags = MountFlag.NO_OPEN | MountFlag.OPEN_IN_C | MountFlag.CACHE_READDIR;
    const dispatch = session.#dispatch.bind(session);
    const folderFd = options.mountpointFd ?? openMountpoint(mountpoint);
    try {
      session.#handle = session.#fuse.mount(
        resolve(mountpoint),
        KERNEL_OPTIONS,
        dispatch,
        MAX_READ_BYTES,
        MAX_READ_BYTES,
        flags,
        folderFd,
      );
    } catch (cause) {
      // libfuse has printed its own reason on stderr (a busy mountpoint, no permission to mount).
      const detail = cause instanceof Error ? cause.message : String(cause);
      throw new TeleportError(ErrorCode.IO, `could not mount on ${mountpoint}: ${detail}`, { cause });
    } finally {
      if (options.mountpointFd === undefined) closeSync(folderFd);
    }
    if (options.listings !== undefined) options.listings.kernel = session;
    return session;
  }

  /** Detaches the mount; `closed` settles when the kernel has let go. */
  unmount(): void {
    this.#abort.abort();
    if (this.#handle !== undefined) this.#fuse.unmount(this.#handle);
  }

  invalEntry(parent: number, name: string): void {
    if (this.#handle !== undefined) this.#fuse.invalEntry(this.#handle, parent, name);
  }

  invalInode(ino: number): void {
    if (this.#handle !== undefined) this.#fuse.invalInode(this.#handle, ino);
  }

  get #kernelTtl(): number {
    return this.#listings?.kernelTtlSeconds ?? this.#ttl;
  }

  #dispatch(
    op: number,
    req: FuseRequest,
    ino: number,
    _fh: number,
    offset: number,
    size: number,
    name: string | undefined,
    seq: number,
  ): void {
    if (op === FuseOp.DESTROY) this.#destroy();
    else if (op === FuseOp.INTERRUPT) this.#pending.get(seq)?.abort(new Interrupted());
    else {
      const node = this.#table.get(ino);
      if (node === undefined && op === FuseOp.GETATTR) this.#getattr(req, ino);
      else if (node === undefined) this.#fuse.replyErr(req, op === FuseOp.READ ? EIO : ESTALE);
      else this.#answer(op, req, seq, node, offset, size, name ?? "");
    }
  }

  #answer(
    op: number,
    req: FuseRequest,
    seq: number,
    node: Inode,
    offset: number,
    size: number,
    name: string,
  ): void {
    const { ino } = node;
    if (op === FuseOp.LOOKUP) this.#afterListing(req, seq, [node], () => this.#lookup(req, ino, name));
    else if (op === FuseOp.GETATTR)
      this.#afterListing(req, seq, this.#holders(node), () => this.#getattr(req, ino));
    else if (op === FuseOp.READLINK) this.#fuse.replyReadlink(req, node.entry.linkTarget);
    else if (op === FuseOp.READ) void this.#readInto(req, seq, node, offset, size);
    else if (op === FuseOp.READDIR || op === FuseOp.READDIRPLUS) {
      const plus = op === FuseOp.READDIRPLUS;
      // Listed again only at the start: a listing changing under a reader's offsets skips names.
      const folders = offset === 0 ? [node] : [];
      this.#afterListing(req, seq, folders, () => this.#readdir(req, ino, offset, size, plus));
    } else this.#fuse.replyErr(req, ENOSYS);
  }

  /** The folders whose listings say what `node` is: its parent's, and a folder's own (its entries). */
  #holders(node: Inode): Inode[] {
    const parent = this.#table.get(node.parentIno);
    const holders = parent === undefined || parent === node ? [] : [parent];
    if (node.children !== undefined) holders.push(node);
    return holders;
  }

  #lookup(req: FuseRequest, parentIno: number, name: string): void {
    const child = this.#table.lookup(parentIno, name);
    if (child === undefined) this.#fuse.replyErr(req, ENOENT);
    else this.#fuse.replyEntry(req, this.#table.attr(child), this.#kernelTtl, this.#kernelTtl);
  }

  #getattr(req: FuseRequest, ino: number): void {
    // A file replaced on the host but still open here keeps its old attributes (reads are EIO).
    const node = this.#table.get(ino) ?? this.#table.retired(ino);
    if (node === undefined) this.#fuse.replyErr(req, ESTALE);
    else this.#fuse.replyAttr(req, this.#table.attr(node), this.#kernelTtl);
  }

  #readdir(req: FuseRequest, ino: number, offset: number, size: number, plus: boolean): void {
    const dir = this.#table.get(ino);
    if (dir?.children === undefined) {
      this.#fuse.replyErr(req, dir === undefined ? ESTALE : EINVAL);
      return;
    }
    let all = offset === 0 ? undefined : this.#dirLists.get(ino);
    if (all === undefined) {
      const parent = this.#table.get(dir.parentIno) ?? dir;
      all = [[".", dir], ["..", parent], ...dir.children];
      this.#dirLists.set(ino, all);
    }
    const batch = all.slice(offset, offset + fitting(all, offset, size, plus));
    if (offset + batch.length >= all.length) this.#dirLists.delete(ino);
    const attrs = new Float64Array(batch.length * ATTR_FIELDS);
    batch.forEach(([, node], i) => {
      this.#table.attr(node, attrs, i * ATTR_FIELDS);
    });
    const names = batch.map(([entryName]) => entryName);
    const ttl = this.#kernelTtl;
    this.#fuse.replyDir(req, size, plus, names, attrs, offset, ttl, ttl);
  }

  /**
   * Answers with `answer` (which reads the table afresh) once the stale ones of `folders` are
   * listed again; at once when none is.
   */
  #afterListing(req: FuseRequest, seq: number, folders: Inode[], answer: () => void): void {
    const listings = this.#listings;
    const stale = listings === undefined ? [] : folders.filter((folder) => listings.stale(folder));
    if (listings === undefined || stale.length === 0) {
      answer();
      return;
    }
    // The listings are shared and bounded by their own deadline; this request waits by its own.
    void this.#answerBy(req, seq, async () => {
      await Promise.all(stale.map((folder) => listings.list(folder)));
      return answer;
    });
  }

  async #readInto(req: FuseRequest, seq: number, node: Inode, offset: number, size: number): Promise<void> {
    const length = Math.max(0, Math.min(size, node.entry.size - offset));
    if (length === 0) {
      this.#fuse.replyBuf(req, new Uint8Array(0));
      return;
    }
    await this.#answerBy(req, seq, async (signal) => {
      const bytes = await this.#read(node, offset, length, signal);
      if (bytes instanceof Uint8Array) {
        if (bytes.length !== length) throw new Error(`read ${bytes.length} bytes of ${length}`);
        return () => this.#fuse.replyBuf(req, bytes);
      }
      const read = bytes.reduce((sum, piece) => sum + piece.length, 0);
      if (read !== length) throw new Error(`read ${read} bytes of ${length}`);
      return () => this.#replyPieces(req, bytes);
    });
  }

  /** Sends `pieces`, held ranges opened now; false (nothing sent) if one is no longer held. */
  #replyPieces(req: FuseRequest, pieces: readonly ReadPiece[]): boolean {
    const sent: (Uint8Array | FileRange)[] = [];
    for (const piece of pieces) {
      const bytes = piece instanceof Uint8Array ? piece : piece.open();
      if (bytes === undefined) return false;
      sent.push(bytes);
    }
    this.#fuse.replyIov(req, sent);
    return true;
  }

  /**
   * Runs `work` for a request with a signal that aborts at its deadline, on an INTERRUPT or
   * at unmount, then sends what it returns; a failure is EIO (never wrong bytes: the reader may
   * retry), an interrupt EINTR. An answer that says it could not be sent (false: the bytes it
   * was to send moved away) has its work done again.
   */
  async #answerBy(
    req: FuseRequest,
    seq: number,
    work: (signal: AbortSignal) => Promise<() => unknown>,
  ): Promise<void> {
    const interrupt = new AbortController();
    this.#pending.set(seq, interrupt);
    const deadline = AbortSignal.timeout(this.#timeoutMs);
    const signal = AbortSignal.any([this.#abort.signal, deadline, interrupt.signal]);
    try {
      for (let attempt = 1; ; attempt++) {
        const answer = await untilAborted(work(signal), signal);
        // A late answer after the session is destroyed would reach freed libfuse state: dropped.
        if (this.#handle === undefined || answer() !== false) break;
        if (attempt === READ_ATTEMPTS) throw new Error("the bytes to send kept moving away");
      }
    } catch {
      const errno = interrupt.signal.aborted && !deadline.aborted ? EINTR : EIO;
      if (this.#handle !== undefined) this.#fuse.replyErr(req, errno);
    } finally {
      this.#pending.delete(seq);
    }
  }

  #destroy(): void {
    this.#abort.abort();
    if (this.#handle !== undefined) this.#fuse.destroy(this.#handle);
    this.#handle = undefined;
    this.#resolveClosed();
  }
}

/** How many of `entries` from `offset` fill a readdir reply of `size` bytes (one more: the addon stops where they do). */
function fitting(
  entries: readonly (readonly [string, Inode])[],
  offset: number,
  size: number,
  plus: boolean,
): number {
  const header = plus ? DIRENTPLUS_BYTES : DIRENT_BYTES;
  let used = 0;
  let count = 0;
  for (let i = offset; i < entries.length && used <= size; i++, count++) {
    // A name's UTF-8 bytes are at least its UTF-16 length: an estimate that errs towards one more.
    used += (header + (entries[i]?.[0].length ?? 0) + 7) & ~7;
  }
  return count + 1;
}
