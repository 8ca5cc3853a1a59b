/**
 * The Linux addon (`native/teleport_io.c`, built by node-gyp at install): the system calls Node
 * does not expose. Absent where it was not built (another platform, no compiler) or when
 * TELEPORT_NATIVE=0; io.ts then uses the portable path.
 */
import { createRequire } from "node:module";

/** The addon's functions; each is synchronous and throws Errors with errno names as `code`. */
export interface NativeAddon {
  copyFileRange(fdIn: number, offsetIn: number, fdOut: number, offsetOut: number, length: number): number;
  cloneRange(
    fdSource: number,
    offsetSource: number,
    fdTarget: number,
    offsetTarget: number,
    length: number,
  ): void;
  preallocate(fd: number, offset: number, length: number): void;
  punchHole(fd: number, offset: number, length: number): void;
  /** flock(fd, operation): false if LOCK_NB found the lock held elsewhere. Absent from older builds. */
  flock?(fd: number, operation: number): boolean;
  /** lseek with SEEK_DATA or SEEK_HOLE: the offset found, or -1 past the last data. */
  seek(fd: number, offset: number, whence: typeof SEEK_DATA | typeof SEEK_HOLE): number;
  fadvise(fd: number, offset: number, length: number, advice: number): void;
  /** A thread writing to the socket (see sender_t in the addon); stops when closed or collected. */
  openSender(socketFd: number): NativeSender;
  /**
   * Sends `plan.length / 3` frames: frame i is `headers`' i-th equal slice, then `plan[3i + 2]`
   * bytes of file descriptor `plan[3i]` from offset `plan[3i + 1]`; `callback` gets the error
   * (ENODATA: a file ended early; ECANCELED: the sender was closed) and the bytes sent.
   */
  senderSend(
    sender: NativeSender,
    headers: Buffer,
    plan: Float64Array,
    callback: (error: NodeJS.ErrnoException | null, sent: number) => void,
  ): void;
  closeSender(sender: NativeSender): void;
  setTcpCongestion(fd: number, name: string): void;
  tcpCongestion(fd: number): string;
  setTcpNotSentLowat(fd: number, bytes: number): void;
  /** A close-on-exec duplicate of `fd`. */
  dupFd(fd: number): number;
  tcpInfo(fd: number): NativeTcpInfo;
  // A file's metadata through descriptors (native/metadata.c), never through a path string.
  /** flistxattr: the names of the open file's extended attributes. */
  flistXattrs(fd: number): string[];
  fgetXattr(fd: number, name: string): Buffer;
  fsetXattr(fd: number, name: string, value: Buffer): void;
  fremoveXattr(fd: number, name: string): void;
  /** utimensat with AT_SYMLINK_NOFOLLOW: the times of `name` itself, a symlink never followed. */
  utimensAt(dirFd: number, name: string, atimeMs: number, mtimeMs: number): void;
  /** fstatat without following, then readlinkat; throws EINVAL if `name` is not a symlink. */
  readSymlinkAt(dirFd: number, name: string): { target: string; mtimeMs: number };
  // Directory-relative calls (native/at.c), for the client's destination (directory-io.ts).
  /** openat; always O_CLOEXEC. */
  openAt(dirFd: number, name: string, flags: number, mode: number): number;
  mkdirAt(dirFd: number, name: string, mode: number): void;
  renameAt(fromDirFd: number, fromName: string, toDirFd: number, toName: string): void;
  /** linkat without AT_SYMLINK_FOLLOW: a symlink is linked, not followed. */
  linkAt(fromDirFd: number, fromName: string, toDirFd: number, toName: string): void;
  symlinkAt(target: string, dirFd: number, name: string): void;
  unlinkAt(dirFd: number, name: string): void;
  /** fstatat with AT_SYMLINK_NOFOLLOW: [mode, dev, ino]. */
  statAt(dirFd: number, name: string): [number, number, number];
}

/** The addon's handle on a sender thread. */
export type NativeSender = { readonly __brand: "NativeSender" };

export interface NativeTcpInfo {
  rttUs: number;
  congestionWindow: number;
  mss: number;
  retransmits: number;
  /** Bytes per second, as the kernel's rate sampler measures it. */
  deliveryRate: number;
  bytesAcked: number;
  notSentBytes: number;
}

export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
export const FADV_SEQUENTIAL = 2;

const ADDON_PATH = "../../../build/Release/teleport_io.node";

function load<T>(path: string): T | undefined {
  if (process.env.TELEPORT_NATIVE === "0" || process.platform !== "linux") return undefined;
  try {
    return createRequire(import.meta.url)(path) as T;
  } catch {
    return undefined; // not built: the portable path
  }
}

export const native: NativeAddon | undefined = load<NativeAddon>(ADDON_PATH);

/** `native/beneath.c` (in the same addon): opening beneath a directory descriptor (openat2). */
export interface NativeBeneath {
  /**
   * openat2(dirFd, path, flags | O_CLOEXEC) with RESOLVE_BENEATH, and RESOLVE_NO_SYMLINKS when
   * `noSymlinks`: the new descriptor. Throws ENOSYS where the kernel has no openat2, EXDEV for a
   * path leading above `dirFd`, ELOOP for a symlink refused. Given `out`, also fstats the new
   * descriptor into it, as statNameBeneath does.
   */
  openBeneath(dirFd: number, path: string, flags: number, noSymlinks: boolean, out?: Float64Array): number;
  /**
   * fstatat(dirFd, name, AT_SYMLINK_NOFOLLOW) of one component (EINVAL for "/", "." or ".."):
   * fills `out` with mode, dev, ino, size, mtime seconds and nanoseconds, nlink.
   */
  statNameBeneath(dirFd: number, name: string, out: Float64Array): void;
}

export const nativeBeneath: NativeBeneath | undefined = load<NativeBeneath>(ADDON_PATH);

/**
 * `native/cdc.c` (in the same addon): content-defined chunking's cut-point scan over a whole
 * buffer, the rule given as ContentDefinedChunker packs it (chunking/chunker.ts).
 */
export interface NativeCdc {
  /**
   * Writes the lengths of the chunks at the start of `data`, one after another, into `lengths`
   * and returns how many: it stops where `lengths` is full or where the rest of `data` needs more
   * bytes to decide (never at `eof`, where the last bytes always make a chunk).
   */
  cdcCuts(rule: Int32Array, data: Uint8Array, eof: boolean, lengths: Uint32Array): number;
}

/** Checked for its function: an addon built from older sources has none, and the JS scan serves. */
const cdcCuts = load<Partial<NativeCdc>>(ADDON_PATH)?.cdcCuts;
export const nativeCdc: NativeCdc | undefined = cdcCuts === undefined ? undefined : { cdcCuts };

/**
 * `native/udp.c` (in the same addon): this process's UDP sockets by their local port, for a hole
 * punch sent from the QUIC library's own socket (reach/udp-punch.ts), which JavaScript cannot reach.
 */
export interface NativeUdp {
  /** The local port of each UDP socket this process holds. */
  udpLocalPorts(): number[];
  /** sendto from the UDP socket bound to `localPort`; throws ENOENT when there is none. */
  udpSendFrom(localPort: number, ipv4: string, port: number, data: Buffer): number;
}

/** Checked for its functions: an addon built from older sources has none, and punching is off. */
const udpAddon = load<Partial<NativeUdp>>(ADDON_PATH);
export const nativeUdp: NativeUdp | undefined =
  udpAddon?.udpLocalPorts === undefined || udpAddon.udpSendFrom === undefined
    ? undefined
    : { udpLocalPorts: udpAddon.udpLocalPorts, udpSendFrom: udpAddon.udpSendFrom };
