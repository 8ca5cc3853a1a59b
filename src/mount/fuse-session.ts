/**
 * A read-only mount: answers the kernel's requests from an InodeTable and a byte source, each
 * request exactly once and by a deadline (EIO past it), so no reader ever waits forever.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import {
  ATTR_FIELDS,
  type FuseAddon,
  FuseOp,
  type FuseRequest,
  loadFuse,
  MountFlag,
  type MountHandle,
} from "./binding.js";
import type { Inode, InodeTable } from "./inode-table.js";

const ENOENT = 2;
const EIO = 5;
const EINVAL = 22;
const ENOSYS = 38;

/** Reads `length` bytes of a file at `offset` (fewer only at its end); must never return wrong bytes. */
export type ReadFile = (
  node: Inode,
  offset: number,
  length: number,
  signal: AbortSignal,
) => Promise<Uint8Array>;

export interface MountOptions {
  /** How long the kernel may keep names and attributes without asking again (s). */
  ttlSeconds?: number;
  /** A read not answered by then gets EIO (ms). */
  requestTimeoutMs?: number;
}

const DEFAULT_TTL_SECONDS = 60;
const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
/** Kernel reads up to 1 MiB (max_pages) and its readahead asks as much. */
const MAX_READ_BYTES = 1 << 20;
/** Directory entries handed to the addon per readdir reply (it packs what fits). */
const DIR_BATCH = 512;
const KERNEL_OPTIONS = "ro,default_permissions,fsname=teleport,subtype=teleport";

export class FuseSession {
  readonly #fuse: FuseAddon;
  readonly #table: InodeTable;
  readonly #read: ReadFile;
  readonly #ttl: number;
  readonly #timeoutMs: number;
  readonly #abort = new AbortController();
  #handle: MountHandle | undefined;
  #resolveClosed: () => void = () => {};
  /** Settles once the kernel connection has ended and the session is destroyed. */
  readonly closed: Promise<void>;

  private constructor(table: InodeTable, read: ReadFile, options: MountOptions) {
    this.#fuse = loadFuse();
    this.#table = table;
    this.#read = read;
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
    // Content is immutable while mounted: keep page and directory caches (no open round trips).
    const flags = MountFlag.NO_OPEN | MountFlag.OPEN_IN_C | MountFlag.CACHE_READDIR;
    const dispatch = session.#dispatch.bind(session);
    try {
      session.#handle = session.#fuse.mount(
        mountpoint,
        KERNEL_OPTIONS,
        dispatch,
        MAX_READ_BYTES,
        MAX_READ_BYTES,
        flags,
      );
    } catch (cause) {
      // libfuse has printed its own reason on stderr (a busy mountpoint, no permission to mount).
      const detail = cause instanceof Error ? cause.message : String(cause);
      throw new TeleportError(ErrorCode.IO, `could not mount on ${mountpoint}: ${detail}`, { cause });
    }
    return session;
  }

  /** Detaches the mount; `closed` settles when the kernel has let go. */
  unmount(): void {
    this.#abort.abort();
    if (this.#handle !== undefined) this.#fuse.unmount(this.#handle);
  }

  #dispatch(
    op: number,
    req: FuseRequest,
    ino: number,
    _fh: number,
    offset: number,
    size: number,
    name?: string,
  ): void {
    if (op === FuseOp.DESTROY) {
      this.#destroy();
      return;
    }
    const node = this.#table.get(ino);
    if (node === undefined) this.#fuse.replyErr(req, ENOENT);
    else if (op === FuseOp.LOOKUP) this.#lookup(req, node, name ?? "");
    else if (op === FuseOp.GETATTR) this.#fuse.replyAttr(req, this.#table.attr(node), this.#ttl);
    else if (op === FuseOp.READLINK) this.#fuse.replyReadlink(req, node.entry.linkTarget);
    else if (op === FuseOp.READ) void this.#readInto(req, node, offset, size);
    else if (op === FuseOp.READDIR || op === FuseOp.READDIRPLUS)
      this.#readdir(req, node, offset, size, op === FuseOp.READDIRPLUS);
    else this.#fuse.replyErr(req, ENOSYS);
  }

  #lookup(req: FuseRequest, parent: Inode, name: string): void {
    const child = this.#table.lookup(parent.ino, name);
    if (child === undefined) this.#fuse.replyErr(req, ENOENT);
    else this.#fuse.replyEntry(req, this.#table.attr(child), this.#ttl, this.#ttl);
  }

  #readdir(req: FuseRequest, dir: Inode, offset: number, size: number, plus: boolean): void {
    if (dir.children === undefined) {
      this.#fuse.replyErr(req, EINVAL);
      return;
    }
    const parent = this.#table.get(dir.parentIno) ?? dir;
    const all: [string, Inode][] = [[".", dir], ["..", parent], ...dir.children];
    const batch = all.slice(offset, offset + DIR_BATCH);
    const attrs = new Float64Array(batch.length * ATTR_FIELDS);
    batch.forEach(([, node], i) => {
      this.#table.attr(node, attrs, i * ATTR_FIELDS);
    });
    const names = batch.map(([entryName]) => entryName);
    this.#fuse.replyDir(req, size, plus, names, attrs, offset, this.#ttl, this.#ttl);
  }

  async #readInto(req: FuseRequest, node: Inode, offset: number, size: number): Promise<void> {
    const length = Math.max(0, Math.min(size, node.entry.size - offset));
    if (length === 0) {
      this.#fuse.replyBuf(req, new Uint8Array(0));
      return;
    }
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#timeoutMs)]);
    try {
      const bytes = await untilAborted(this.#read(node, offset, length, signal), signal);
      if (bytes.length !== length) throw new Error(`read ${bytes.length} bytes of ${length}`);
      this.#reply((fuse) => fuse.replyBuf(req, bytes));
    } catch {
      // Never wrong bytes: a failed or late read is an I/O error the reader can retry.
      this.#reply((fuse) => fuse.replyErr(req, EIO));
    }
  }

  /** A late answer after the session is destroyed would reach freed libfuse state: dropped. */
  #reply(answer: (fuse: FuseAddon) => void): void {
    if (this.#handle !== undefined) answer(this.#fuse);
  }

  #destroy(): void {
    this.#abort.abort();
    if (this.#handle !== undefined) this.#fuse.destroy(this.#handle);
    this.#handle = undefined;
    this.#resolveClosed();
  }
}

function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
