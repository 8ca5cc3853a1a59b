/**
 * The kernel's own read-ahead for a FUSE mount: whatever max_readahead the mount asks in INIT,
 * the kernel reads ahead at most the backing device's read_ahead_kb, 128 KiB by default. Raised
 * for our mount (root may; anyone else keeps the default), so a sequential reader's requests
 * come 1 MiB at a time: an eighth of the requests, each answered from chunks fetched ahead.
 */
import { stat, writeFile } from "node:fs/promises";

/**
 * Eight FUSE reads of 1 MiB (max_pages 256): the kernel splits its read-ahead into reads of at
 * most that, so a sequential reader keeps up to eight in flight instead of one or two.
 */
export const KERNEL_READ_AHEAD_KIB = 8192;

/**
 * Sets the read-ahead of the mount at `mountpoint` (its bdi is 0:<minor of st_dev>); false where
 * it may not (not root, no sysfs) or the mountpoint is not a mount of its own.
 */
export async function raiseKernelReadAhead(
  mountpoint: string,
  kib = KERNEL_READ_AHEAD_KIB,
): Promise<boolean> {
  try {
    const { dev } = await stat(mountpoint);
    // Linux's new_encode_dev: minor is the low 8 bits and bits 20 and up.
    const major = (dev >>> 8) & 0xfff;
    const minor = (dev & 0xff) | ((dev >>> 12) & 0xfff00);
    if (major !== 0) return false; // FUSE mounts are anonymous devices, major 0
    await writeFile(`/sys/class/bdi/0:${minor}/read_ahead_kb`, `${kib}\n`);
    return true;
  } catch {
    return false;
  }
}
