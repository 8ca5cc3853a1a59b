/**
 * Chunks a file on this machine already holds, for a mount: the chunk index says where the bytes
 * of a hash were when a file was hashed (a share this machine hosts, a pull's output, a seed);
 * the file is read there only if it is unchanged since (its identity) and writable by this user
 * alone, and the bytes are hashed again before use. A row that lies costs a fetch, never wrong
 * bytes, and is dropped from the index.
 */

import { closeSync, constants, fstatSync, openSync, realpathSync } from "node:fs";
import { resolve } from "node:path";
import { hashBytes } from "../chunking/hash.js";
import { type ChunkIndex, identityOf, inodeOf } from "../store/chunk-index.js";
import { writableOnlyByUs } from "../store/private-file.js";
import type { ChunkRef } from "../wire/messages.js";
import { readWholeAndClose } from "./chunk-files.js";

/** What LocalChunks asks of the chunk index. */
export type LocalChunkIndex = Pick<ChunkIndex, "locate" | "forget" | "reading">;

export class LocalChunks {
  readonly #index: LocalChunkIndex;
  /**
   * The mount's own folder, as given and resolved: a file there is read through this very
   * process, which would wait on itself.
   */
  readonly #excluded: string[];

  constructor(index: LocalChunkIndex, mountpoint: string) {
    this.#index = index;
    this.#excluded = [resolve(mountpoint), realpathSync(mountpoint)].map(
      (path) => `${path.replace(/\/+$/, "")}/`,
    );
  }

  /** Runs `lookups` (read, many times) with the index read once: one lock, not one per chunk. */
  together<T>(lookups: () => T): T {
    return this.#index.reading(lookups);
  }

  /** The chunk's verified bytes from a local file holding them, if one does. */
  read(ref: ChunkRef): Buffer | undefined {
    let sources: ReturnType<ChunkIndex["locate"]>;
    try {
      sources = this.#index.locate(ref.hash);
    } catch {
      return undefined; // the index is a cache: unreadable, the network serves
    }
    for (const source of sources) {
      if (source.size !== ref.size || this.#excluded.some((folder) => source.path.startsWith(folder)))
        continue;
      const fd = openUnchanged(
        source.path,
        source.inDownload ? source.inode : source.identity,
        source.inDownload,
      );
      if (fd === undefined) continue;
      const bytes = readWholeAndClose(fd, source.offset, ref.size);
      if (bytes !== undefined && hashBytes(bytes).equals(ref.hash)) return bytes;
      // A download in progress may be another pull's, still writing: only complete files are dropped.
      if (!source.inDownload) this.#forget(source.fileId);
    }
    return undefined;
  }

  #forget(fileId: number): void {
    try {
      this.#index.forget(fileId);
    } catch {
      // a row kept is checked again before use
    }
  }
}

/**
 * The file at `path` opened for reading if it is a regular file of this user still as it was
 * indexed: checked through the descriptor, so the file checked is the file read (a symlink or
 * another file swapped in by name is refused, not followed).
 */
function openUnchanged(path: string, recorded: string, byInode: boolean): number | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const stats = fstatSync(fd, { bigint: true });
    if (
      stats.isFile() &&
      writableOnlyByUs(stats) &&
      (byInode ? inodeOf(stats) : identityOf(stats)) === recorded
    )
      return fd;
  } catch {
    // unreadable: as if changed
  }
  closeSync(fd);
  return undefined;
}
