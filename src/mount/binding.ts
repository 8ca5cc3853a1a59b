/**
 * The FUSE addon (native/fuse/teleport_fuse.c over libfuse3's low-level API), loaded only when a
 * mount is asked for: a machine without libfuse3 keeps every other command and the I/O addon.
 *
 * The addon hands each kernel request to `dispatch` and returns at once; the dispatcher answers
 * later with exactly one reply call for that request (a request never answered hangs its reader).
 */
import { accessSync, constants } from "node:fs";
import { createRequire } from "node:module";
import { ErrorCode, TeleportError } from "../errors.js";

const ADDON_PATH = "../../../build/Release/teleport_fuse.node";
const FUSE_DEVICE = "/dev/fuse";

/** Kernel requests as the addon numbers them. */
export const FuseOp = {
  LOOKUP: 1,
  GETATTR: 2,
  READLINK: 3,
  OPEN: 4,
  READ: 5,
  RELEASE: 6,
  OPENDIR: 7,
  READDIR: 8,
  READDIRPLUS: 9,
  RELEASEDIR: 10,
  STATFS: 11,
  INIT: 12,
  /** The kernel connection ended (unmounted or aborted): call destroy(handle). */
  DESTROY: 13,
  /** The reader of request `seq` got a signal: answer it now (EINTR) if it is still pending. */
  INTERRUPT: 14,
} as const;

/** What the addon answers itself, without a trip to JavaScript. */
export const MountFlag = {
  OPEN_IN_C: 1,
  CACHE_READDIR: 2,
  DIRECT_IO: 4,
  /** open/opendir answered ENOSYS: the kernel stops sending them and keeps page and dir caches. */
  NO_OPEN: 16,
} as const;

/** Bytes of a file this process holds open, sent to the kernel from the file (not through JS). */
export interface FileRange {
  readonly fd: number;
  readonly position: number;
  readonly length: number;
}

/** A request's handle (the fuse_req_t as a number); valid until its one reply. */
export type FuseRequest = number;
export type MountHandle = object;

/**
 * One kernel request: (op, req, ino, fh, offset, size, name for LOOKUP, seq). `seq` numbers the
 * requests of a mount; INTERRUPT names the interrupted one by it (req is 0 then).
 */
export type FuseDispatcher = (
  op: number,
  req: FuseRequest,
  ino: number,
  fh: number,
  offset: number,
  size: number,
  name: string | undefined,
  seq: number,
) => void;

/** Attributes as the addon reads them: [ino, mode, nlink, size, mtimeMs, uid, gid] (7 per entry). */
export const ATTR_FIELDS = 7;

export interface FuseAddon {
  mount(
    mountpoint: string,
    options: string,
    dispatch: FuseDispatcher,
    maxReadahead: number,
    maxWrite: number,
    flags: number,
    /** The mountpoint open (O_DIRECTORY|O_NOFOLLOW): as root the mount lands on it, not on its path. */
    folderFd: number,
  ): MountHandle;
  /** Detaches the mount; the loop's end then arrives as FuseOp.DESTROY. */
  unmount(handle: MountHandle): void;
  destroy(handle: MountHandle): void;
  replyErr(req: FuseRequest, errno: number): void;
  replyEntry(req: FuseRequest, attr: Float64Array, entryTimeout: number, attrTimeout: number): void;
  replyAttr(req: FuseRequest, attr: Float64Array, attrTimeout: number): void;
  replyOpen(req: FuseRequest, fh: number, flags: number): void;
  replyBuf(req: FuseRequest, bytes: Uint8Array): void;
  /**
   * Answers with `pieces` back to back, one write to the kernel: arrays as they are (no copy made
   * first), file ranges read by the addon into a buffer of its own (never a JS buffer); a range
   * that cannot be read whole answers EIO.
   */
  replyIov(req: FuseRequest, pieces: readonly (Uint8Array | FileRange)[]): void;
  replyReadlink(req: FuseRequest, target: string): void;
  /** Packs entries until `size` bytes are full; returns how many were packed. */
  replyDir(
    req: FuseRequest,
    size: number,
    plus: boolean,
    names: string[],
    attrs: Float64Array,
    firstOffset: number,
    entryTimeout: number,
    attrTimeout: number,
  ): number;
  /**
   * The kernel forgets `name` in folder `parent` (its next lookup asks again). Queued for the
   * addon's notify thread: never blocks this one, even while a request on the folder is pending.
   */
  invalEntry(handle: MountHandle, parent: number, name: string): void;
  /** The kernel drops the inode's cached pages (a folder's: its entries) and attributes; queued too. */
  invalInode(handle: MountHandle, ino: number): void;
}

let loaded: FuseAddon | undefined;

/** The addon, or a FUSE_UNAVAILABLE error saying what this machine lacks. */
export function loadFuse(): FuseAddon {
  if (loaded !== undefined) return loaded;
  if (process.platform !== "linux") throw unavailable(`mounting needs Linux (this is ${process.platform})`);
  try {
    accessSync(FUSE_DEVICE, constants.R_OK | constants.W_OK);
  } catch (cause) {
    throw unavailable(`this machine has no usable ${FUSE_DEVICE}`, cause);
  }
  try {
    loaded = createRequire(import.meta.url)(ADDON_PATH) as FuseAddon;
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message.split("\n")[0] : String(cause);
    throw unavailable(`teleport's FUSE addon is not available (${reason})`, cause);
  }
  return loaded;
}

function unavailable(message: string, cause?: unknown): TeleportError {
  return new TeleportError(ErrorCode.FUSE_UNAVAILABLE, message, { cause });
}
