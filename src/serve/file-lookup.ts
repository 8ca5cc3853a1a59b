/**
 * What the files one GET_CHUNKS names are now, for the recent-chunk ring, which serves a chunk
 * only to a request whose path is the file its bytes were read from (see RecentChunks). Each
 * folder the request names is opened once, beneath the share root with no symlink on the way,
 * and each file is then one stat of its name beneath that folder, not followed: one system call
 * per file where opening it from the root took three (openat2, fstat, close). Folders are held
 * only while their request runs, so a path is resolved during its request, as an open would be.
 */
import { constants } from "node:fs";
import { closeQuietly } from "../engine/file-io.js";
import { beneath, type FolderHandle } from "../platform/open-beneath.js";
import { splitWirePath } from "../wire/path.js";
import type { FileIdentity } from "./recent-chunks.js";
import type { Share } from "./share.js";
import { quietly } from "./share-entry.js";

/** Folders at most this many per request stay open (a request names a few; more is hostile). */
const MAX_OPEN_FOLDERS = 64;

export class FileLookup {
  readonly #share: Pick<Share, "openFolder">;
  /** By "/"-separated path; undefined: it could not be opened (no lookup beneath it answers). */
  readonly #folders = new Map<string, FolderHandle | undefined>();
  #closed = false;

  constructor(share: Pick<Share, "openFolder">) {
    this.#share = share;
  }

  /**
   * The identity (OpenedFile.identity) of the regular file at a wire path now; undefined where
   * there is none, it is something else (a symlink, a FIFO), or the lookup is closed.
   */
  identity(wirePath: string): FileIdentity | undefined {
    if (this.#closed) return undefined;
    const slash = wirePath.lastIndexOf("/");
    const folder = this.#folder(slash < 0 ? "" : wirePath.slice(0, slash));
    if (folder === undefined) return undefined;
    const name = wirePath.slice(slash + 1); // statName takes one name only, never "..", "/" or NUL
    const stats = quietly(() => beneath.statName(folder, name));
    if (stats === undefined || (stats.mode & constants.S_IFMT) !== constants.S_IFREG) return undefined;
    return stats;
  }

  #folder(relPath: string): FolderHandle | undefined {
    if (this.#folders.has(relPath)) return this.#folders.get(relPath);
    const folder = quietly(() => this.#share.openFolder(splitWirePath(relPath).join("/")));
    if (this.#folders.size >= MAX_OPEN_FOLDERS) this.#closeFolders();
    this.#folders.set(relPath, folder);
    return folder;
  }

  #closeFolders(): void {
    for (const folder of this.#folders.values()) if (folder !== undefined) closeQuietly(folder.fd);
    this.#folders.clear();
  }

  /** Closes the folders; later lookups answer undefined. Idempotent. */
  close(): void {
    this.#closed = true;
    this.#closeFolders();
  }
}
