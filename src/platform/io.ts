/**
 * Platform I/O: the calls whose fastest form depends on the platform, behind one interface with
 * two implementations chosen at run time.
 *
 * - `nativeIo` (Linux, the addon in native/): in-kernel copies (copy_file_range, FICLONERANGE
 *   where the file system shares blocks), fallocate, SEEK_DATA/SEEK_HOLE, posix_fadvise,
 *   sendfile to a socket, per-socket TCP_CONGESTION, TCP_NOTSENT_LOWAT and TCP_INFO, and the
 *   `user.` extended attributes of an open file.
 * - `portableIo` (everywhere, and with TELEPORT_NATIVE=0): the same results through Node's fs,
 *   where a result exists without the system call (a copy through a buffer, a file that is all
 *   data), and "not here" where none does (a socket option, a sender: its callers read into
 *   buffers and write those, as they do on an encrypted socket; extended attributes, which Node
 *   reads and writes by no call at all: `pull --xattrs` says it pulls without them).
 *
 * Positional reads and writes into pooled buffers are Node's own on every platform (see
 * engine/file-io.ts): the addon would add nothing to them.
 */
import { readSync, writeSync } from "node:fs";
import type { Server, Socket } from "node:net";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { MAX_XATTR_BYTES, MAX_XATTRS, type Xattr } from "../wire/messages.js";
import { FADV_SEQUENTIAL, type NativeAddon, native, SEEK_DATA, SEEK_HOLE } from "./native.js";

export interface TcpInfo {
  rttMs: number;
  /** Bytes per second the kernel measured the connection delivering. */
  deliveryRate: number;
  retransmits: number;
  /** Bytes written to the socket and not yet sent. */
  notSentBytes: number;
}

/** `length` bytes of the open file `fd` from `offset`. */
export interface FileSlice {
  fd: number;
  offset: number;
  length: number;
}

/**
 * Writes frames to a plaintext socket straight from files (sendfile), on a thread of its own.
 * Its socket's own writes must wait while a send is under way (Connection.writeDirect).
 */
export interface SocketSender {
  /**
   * Sends one frame per slice: the slice's header (`headers`' equal share), then the slice's
   * bytes. The files must stay open until it settles.
   */
  send(headers: Buffer, slices: readonly FileSlice[]): Promise<void>;
  /** Stops the sender; a send under way fails. The socket closes only once this is called. */
  close(): void;
}

export interface PlatformIo {
  readonly kind: "native" | "portable";
  /**
   * Copies `length` bytes from `source` at `sourceOffset` to `target` at `targetOffset`, in the
   * kernel where it can, sharing whole blocks where the file system can (XFS, Btrfs) and both
   * offsets sit at the same place within a block. Returns the bytes copied: fewer only where the
   * source ends.
   */
  copyRange(
    source: number,
    sourceOffset: number,
    target: number,
    targetOffset: number,
    length: number,
  ): number;
  /**
   * Reserves the blocks of `length` bytes from `offset` for `fd` without changing its size;
   * false where it cannot.
   */
  preallocate(fd: number, offset: number, length: number): boolean;
  /**
   * Makes `length` bytes from `offset` read as zeros: a hole where the file system can punch
   * one, zeros written where it cannot.
   */
  zeroRange(fd: number, offset: number, length: number): void;
  /**
   * Deallocates `length` bytes from `offset` (they then read as zeros), the file's size kept;
   * false where it cannot (portable, or a file system without holes): the blocks stay.
   */
  punchHole(fd: number, offset: number, length: number): boolean;
  /**
   * An advisory lock (flock) on the open file `fd`, shared by this open file and no other:
   * "shared" waits while another holds it exclusively, "exclusive" never waits (false if another
   * holds it either way), "unlock" lets go. False too where the file system refuses locks.
   * Undefined where there are no such locks (portable).
   */
  readonly lockFile: ((fd: number, kind: FileLock) => boolean) | undefined;
  /**
   * The data ranges of a file of `size` bytes from `offset`, as [start, end) pairs: holes are
   * what lies between them. Portable: the whole file is data.
   */
  dataRanges(fd: number, size: number): Generator<[number, number]>;
  /** Tells the kernel `fd` will be read start to end (more read-ahead, pages dropped behind). */
  adviseSequential(fd: number): void;
  /**
   * Sets the congestion control of a TCP socket; returns the one in effect after, or undefined
   * where it cannot be read (portable, or a socket without a descriptor).
   */
  setCongestion(socket: Socket, name: string): string | undefined;
  /** Sets TCP_NOTSENT_LOWAT; false where it cannot. */
  setNotSentLowat(socket: Socket, bytes: number): boolean;
  tcpInfo(socket: Socket): TcpInfo | undefined;
  /** A sender for a plaintext TCP socket; undefined where there is none (portable). */
  openSender(socket: Socket): SocketSender | undefined;
  /**
   * A duplicate of a descriptor (or of a listening server's, or a TCP socket's), for a worker
   * thread to own; undefined where there is none (portable).
   */
  duplicate(of: number | Server | Socket): number | undefined;
  /**
   * The `user.` extended attributes of the open file `fd`, up to MAX_XATTRS and MAX_XATTR_BYTES
   * in all; undefined where they cannot be read (portable, or a file system without them). By
   * descriptor, never by path: a folder on the way swapped for a symlink cannot redirect it.
   */
  readXattrs(fd: number): Xattr[] | undefined;
  /**
   * Makes the `user.` extended attributes of the open file `fd` exactly `xattrs`; false where
   * they cannot be written (portable: Node has no call for them, and a path would not be safe).
   */
  writeXattrs(fd: number, xattrs: readonly Xattr[]): boolean;
}

export type FileLock = "shared" | "exclusive" | "unlock";

/** flock(2)'s operations. */
const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const FLOCK_OPERATIONS: Record<FileLock, number> = {
  shared: LOCK_SH,
  exclusive: LOCK_EX | LOCK_NB,
  unlock: LOCK_UN,
};

/** Only this namespace is read and written: the others need privileges or are not the file's. */
const XATTR_NAMESPACE = "user.";

/** Bytes a portable copy moves at a time. */
const COPY_SLICE_BYTES = 256 * 1024;
/** Blocks are shared (FICLONERANGE) only in whole blocks of this size. */
export const BLOCK_BYTES = 4096;
/** Errors that say this file system never shares blocks (others may be about these files only). */
const CANNOT_CLONE = new Set(["EOPNOTSUPP", "ENOTSUP", "ENOSYS", "ENOTTY"]);
/** Errors that say the call does not apply to these files, not that they failed. */
const NOT_HERE = new Set(["EXDEV", "EOPNOTSUPP", "ENOTSUP", "EINVAL", "ENOSYS", "EBADF", "ETXTBSY", "EPERM"]);

function notHere(err: unknown): boolean {
  return NOT_HERE.has((err as NodeJS.ErrnoException).code ?? "");
}

/** The descriptor under a Node TCP socket (a TLS socket's is its underlying TCP socket's). */
function socketFd(socket: Socket | Server): number | undefined {
  const handle = (socket as unknown as { _handle?: { fd?: number } })._handle;
  const fd = handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : undefined;
}

function copyThroughBuffer(
  source: number,
  sourceOffset: number,
  target: number,
  targetOffset: number,
  length: number,
): number {
  const buffer = Buffer.allocUnsafe(Math.min(COPY_SLICE_BYTES, length));
  let done = 0;
  while (done < length) {
    const read = readSync(source, buffer, 0, Math.min(buffer.length, length - done), sourceOffset + done);
    if (read === 0) break;
    for (let at = 0; at < read; ) at += writeSync(target, buffer, at, read - at, targetOffset + done + at);
    done += read;
  }
  return done;
}

function writeZeros(fd: number, offset: number, length: number): void {
  const zeros = Buffer.alloc(Math.min(COPY_SLICE_BYTES, length));
  for (let done = 0; done < length; ) {
    done += writeSync(fd, zeros, 0, Math.min(zeros.length, length - done), offset + done);
  }
}

export const portableIo: PlatformIo = {
  kind: "portable",
  copyRange: copyThroughBuffer,
  preallocate: () => false,
  zeroRange: writeZeros,
  punchHole: () => false,
  lockFile: undefined,
  *dataRanges(_fd, size) {
    if (size > 0) yield [0, size];
  },
  adviseSequential: () => {},
  setCongestion: () => undefined,
  setNotSentLowat: () => false,
  tcpInfo: () => undefined,
  openSender: () => undefined,
  duplicate: () => undefined,
  readXattrs: () => undefined,
  writeXattrs: () => false,
};

/** The Linux implementation over the addon (exported for tests, which run both side by side). */
export function nativeIo(addon: NativeAddon): PlatformIo {
  /** Cleared once a file system refuses a clone: later copies go straight to copy_file_range. */
  let cloning = true;
  /** copy_file_range, or a copy through a buffer where the kernel has none for these files. */
  const copy = (
    source: number,
    sourceOffset: number,
    target: number,
    targetOffset: number,
    length: number,
  ) => {
    if (length === 0) return 0;
    try {
      return addon.copyFileRange(source, sourceOffset, target, targetOffset, length);
    } catch (err) {
      if (!notHere(err)) throw err;
      return copyThroughBuffer(source, sourceOffset, target, targetOffset, length);
    }
  };
  return {
    kind: "native",
    copyRange(source, sourceOffset, target, targetOffset, length) {
      // Blocks are shared only whole, and only where both files are at the same place within a
      // block: the bytes before the target's next block boundary and after its last are copied.
      const head = Math.min(length, (BLOCK_BYTES - (targetOffset % BLOCK_BYTES)) % BLOCK_BYTES);
      const blocks = length - head - ((length - head) % BLOCK_BYTES);
      const congruent = (sourceOffset - targetOffset) % BLOCK_BYTES === 0;
      if (!cloning || !congruent || blocks === 0)
        return copy(source, sourceOffset, target, targetOffset, length);
      const copiedHead = copy(source, sourceOffset, target, targetOffset, head);
      if (copiedHead < head) return copiedHead;
      try {
        addon.cloneRange(source, sourceOffset + head, target, targetOffset + head, blocks);
      } catch (err) {
        if (!notHere(err)) throw err;
        if (CANNOT_CLONE.has((err as NodeJS.ErrnoException).code ?? "")) cloning = false;
        return head + copy(source, sourceOffset + head, target, targetOffset + head, length - head);
      }
      const done = head + blocks;
      return done + copy(source, sourceOffset + done, target, targetOffset + done, length - done);
    },
    preallocate(fd, offset, length) {
      if (length === 0) return true;
      try {
        addon.preallocate(fd, offset, length);
        return true;
      } catch (err) {
        if (notHere(err)) return false;
        throw err;
      }
    },
    zeroRange(fd, offset, length) {
      if (length === 0) return;
      try {
        addon.punchHole(fd, offset, length);
      } catch (err) {
        if (!notHere(err)) throw err;
        writeZeros(fd, offset, length);
      }
    },
    punchHole(fd, offset, length) {
      if (length === 0) return true;
      try {
        addon.punchHole(fd, offset, length);
        return true;
      } catch (err) {
        if (notHere(err)) return false;
        throw err;
      }
    },
    lockFile:
      addon.flock === undefined
        ? undefined
        : (fd, kind) => {
            try {
              return addon.flock?.(fd, FLOCK_OPERATIONS[kind]) === true;
            } catch {
              return false; // no lock to be had here (ENOLCK on a network file system): as if held
            }
          },
    *dataRanges(fd, size) {
      let at = 0;
      while (at < size) {
        let start: number;
        try {
          start = addon.seek(fd, at, SEEK_DATA);
        } catch (err) {
          if (!notHere(err)) throw err;
          yield [at, size]; // a file system without SEEK_DATA: all data
          return;
        }
        if (start < 0 || start >= size) return;
        const end = Math.min(size, addon.seek(fd, start, SEEK_HOLE));
        yield [start, end < 0 ? size : end];
        at = end < 0 ? size : end;
      }
    },
    adviseSequential(fd) {
      try {
        addon.fadvise(fd, 0, 0, FADV_SEQUENTIAL);
      } catch {
        // advice only
      }
    },
    setCongestion(socket, name) {
      const fd = socketFd(socket);
      if (fd === undefined) return undefined;
      try {
        addon.setTcpCongestion(fd, name);
      } catch {
        // not offered by this kernel, or not allowed: the system's stays
      }
      try {
        return addon.tcpCongestion(fd);
      } catch {
        return undefined;
      }
    },
    duplicate(of) {
      const fd = typeof of === "number" ? of : socketFd(of);
      return fd === undefined ? undefined : addon.dupFd(fd);
    },
    setNotSentLowat(socket, bytes) {
      const fd = socketFd(socket);
      if (fd === undefined) return false;
      try {
        addon.setTcpNotSentLowat(fd, bytes);
        return true;
      } catch {
        return false;
      }
    },
    readXattrs(fd) {
      let names: string[];
      try {
        names = addon.flistXattrs(fd).filter((name) => name.startsWith(XATTR_NAMESPACE));
      } catch (err) {
        if (notHere(err)) return undefined;
        throw err;
      }
      const xattrs: Xattr[] = [];
      let total = 0;
      for (const name of names.sort().slice(0, MAX_XATTRS)) {
        let value: Buffer;
        try {
          value = addon.fgetXattr(fd, name);
        } catch {
          continue; // removed since listed
        }
        total += name.length + value.length;
        if (total > MAX_XATTR_BYTES) break;
        xattrs.push({ name, value });
      }
      return xattrs;
    },
    writeXattrs(fd, xattrs) {
      try {
        const wanted = new Set(xattrs.map((xattr) => xattr.name));
        for (const name of addon.flistXattrs(fd)) {
          if (name.startsWith(XATTR_NAMESPACE) && !wanted.has(name)) addon.fremoveXattr(fd, name);
        }
        for (const { name, value } of xattrs) {
          if (name.startsWith(XATTR_NAMESPACE)) addon.fsetXattr(fd, name, value);
        }
        return true;
      } catch (err) {
        if (notHere(err)) return false;
        throw err;
      }
    },
    openSender(socket) {
      const fd = socketFd(socket);
      return fd === undefined ? undefined : nativeSender(addon, fd);
    },
    tcpInfo(socket) {
      const fd = socketFd(socket);
      if (fd === undefined) return undefined;
      try {
        const info = addon.tcpInfo(fd);
        return {
          rttMs: info.rttUs / 1000,
          deliveryRate: info.deliveryRate,
          retransmits: info.retransmits,
          notSentBytes: info.notSentBytes,
        };
      } catch {
        return undefined;
      }
    },
  };
}

function nativeSender(addon: NativeAddon, socketFd: number): SocketSender {
  const sender = addon.openSender(socketFd);
  return {
    send(headers, slices) {
      const plan = new Float64Array(slices.length * 3);
      for (const [i, slice] of slices.entries()) plan.set([slice.fd, slice.offset, slice.length], 3 * i);
      return new Promise((resolve, reject) => {
        addon.senderSend(sender, headers, plan, (error) => {
          if (error === null) resolve();
          else reject(senderError(error));
        });
      });
    },
    close: () => addon.closeSender(sender),
  };
}

function senderError(error: NodeJS.ErrnoException): TeleportError {
  switch (error.code) {
    case "ENODATA":
      return new TeleportError(ErrorCode.FILE_CHANGED, "a file is shorter than it was when listed");
    case "ECANCELED":
      return new TeleportError(ErrorCode.CONNECTION, "connection closed");
    default:
      return toTeleportError(error, "sendfile");
  }
}

/** The implementation this process uses. */
export const platformIo: PlatformIo = native === undefined ? portableIo : nativeIo(native);
