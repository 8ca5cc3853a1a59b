/**
 * The chunk lists of a mount's files, by inode: each from the file's MANIFEST (the hashes
 * committed before any byte), or from a folder's MANIFEST that lists several files at once
 * (folder-prefetch.ts). Bounded in memory: the least recently read lists are dropped first, and
 * asked for again if read again.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import type { ManifestEvent } from "../receive/manifest-event.js";
import { ChunkSequence } from "../receive/manifest-walker.js";
import type { ChunkRef, FileEnd } from "../wire/messages.js";
import { ChunkListing } from "./chunk-listing.js";
import type { Inode } from "./inode-table.js";
import type { MountHost } from "./mount-host.js";

/** Memory all kept chunk lists may hold: ~1.5 million chunks, ~100 GB of files. */
export const DEFAULT_LISTINGS_BYTES = 64 << 20;
/** What a list costs beside its chunks (the object, its map entry). */
const LISTING_OVERHEAD_BYTES = 256;
/** A manifest still streaming after this is abandoned; the next read asks again. */
export const LISTING_TIMEOUT_MS = 10 * 60_000;

interface Kept {
  readonly listing: ChunkListing;
  /** Its memory when last counted in the total. */
  counted: number;
}

export class FileListings {
  readonly #host: MountHost;
  readonly #maxBytes: number;
  /** Chunk lists by inode, least recently used first. */
  readonly #kept = new Map<number, Kept>();
  #bytes = 0;

  constructor(host: MountHost, maxBytes = DEFAULT_LISTINGS_BYTES) {
    this.#host = host;
    this.#maxBytes = maxBytes;
  }

  /** Memory the kept lists hold, as last counted. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether the file has a list, streaming in or complete (not a failed one). */
  has(node: Inode): boolean {
    const kept = this.#kept.get(node.ino);
    return kept !== undefined && !kept.listing.failed;
  }

  /** The file's chunk list, streaming in or complete; a missing or failed one is asked for. */
  get(node: Inode): ChunkListing {
    const kept = this.#kept.get(node.ino);
    if (kept !== undefined && !kept.listing.failed) {
      this.#touch(node.ino, kept);
      return kept.listing;
    }
    const listing = this.adopt(node);
    void this.#fill(node, listing);
    return listing;
  }

  /** Drops the file's list: its inode left the mount's tree (the file changed or went). */
  forget(ino: number): void {
    const kept = this.#kept.get(ino);
    if (kept === undefined) return;
    this.#kept.delete(ino);
    this.#bytes -= kept.counted;
  }

  /** A new, empty list for the file, which the caller fills (a folder's manifest). */
  adopt(node: Inode): ChunkListing {
    const old = this.#kept.get(node.ino);
    if (old !== undefined) this.#bytes -= old.counted;
    this.#kept.delete(node.ino);
    const kept: Kept = {
      listing: new ChunkListing(node.entry.size, (delta) => this.#resized(node.ino, kept, delta)),
      counted: 0,
    };
    this.#touch(node.ino, kept);
    return kept.listing;
  }

  /** A list grew (streaming in) or shrank (complete): counted at once, so the bound holds meanwhile. */
  #resized(ino: number, kept: Kept, delta: number): void {
    if (this.#kept.get(ino) !== kept) return; // dropped already: no longer counted
    kept.counted += delta;
    this.#bytes += delta;
    this.#dropOldest(ino);
  }

  /** Moves the list to the most recent end and drops the oldest past the bound. */
  #touch(ino: number, kept: Kept): void {
    this.#kept.delete(ino);
    this.#kept.set(ino, kept);
    const now = kept.listing.memoryBytes + LISTING_OVERHEAD_BYTES;
    this.#bytes += now - kept.counted;
    kept.counted = now;
    this.#dropOldest(ino);
  }

  /** Drops the least recently read lists while past the bound, never `keep` (the one in use). */
  #dropOldest(keep: number): void {
    for (const [oldest, old] of this.#kept) {
      if (this.#bytes <= this.#maxBytes || oldest === keep) break;
      // A list still streaming goes on for its readers; it is only no longer kept.
      this.#kept.delete(oldest);
      this.#bytes -= old.counted;
    }
  }

  /** Streams the file's own manifest into `listing`. */
  async #fill(node: Inode, listing: ChunkListing): Promise<void> {
    const feed = new ListingFeed([[node, listing]], true);
    try {
      const signal = AbortSignal.timeout(LISTING_TIMEOUT_MS);
      const client = await this.#host.client(signal);
      for await (const event of client.manifest(node.entry.path, signal)) if (feed.accept(event)) return;
      throw new TeleportError(
        ErrorCode.PROTOCOL,
        `the manifest of "${node.entry.path}" ended without FILE_END`,
      );
    } catch (err) {
      feed.fail(err);
    }
  }
}

interface FedFile {
  readonly node: Inode;
  readonly listing: ChunkListing;
  sequence: ChunkSequence | undefined;
}

/**
 * Manifest events into the lists of the files they describe, each checked as a pull checks it
 * (ChunkSequence: in order, inside the file, and at FILE_END covering it but for holes, with the
 * file hash), and FILE_BEGIN against the listed size and mtime. Events of files not asked about
 * (or already failed) are skipped.
 */
export class ListingFeed {
  readonly #byPath = new Map<string, FedFile>();
  /** The file the last FILE_BEGIN opened, while it is being fed. */
  #current: FedFile | undefined;
  /** One file's own manifest: its FILE_BEGIN is taken whatever path it names. */
  readonly #ownManifest: boolean;

  constructor(files: Iterable<readonly [Inode, ChunkListing]>, ownManifest = false) {
    this.#ownManifest = ownManifest;
    for (const [node, listing] of files)
      this.#byPath.set(node.entry.path, { node, listing, sequence: undefined });
  }

  /** Takes one event; true once every file's list is complete or failed. */
  accept(event: ManifestEvent): boolean {
    if (event.kind === "file-begin") this.#begin(event.entry.path, event.entry.size, event.entry.mtimeMs);
    else if (event.kind === "chunks") this.#chunks(event.chunks);
    else if (event.kind === "file-end") this.#end(event.digest);
    else if (event.kind === "entry-error") {
      const file = this.#byPath.get(event.failure.path) ?? this.#only();
      if (file !== undefined) this.#settle(file, new TeleportError(ErrorCode.IO, event.failure.message));
    }
    return this.#byPath.size === 0;
  }

  /** Fails every list not yet complete. */
  fail(reason: unknown): void {
    for (const file of this.#byPath.values()) file.listing.fail(reason);
    this.#byPath.clear();
    this.#current = undefined;
  }

  #begin(path: string, size: number, mtimeMs: number): void {
    const file = this.#byPath.get(path) ?? this.#only();
    this.#current = file;
    if (file === undefined) return;
    if (size !== file.node.entry.size || mtimeMs !== file.node.entry.mtimeMs) {
      const changed = new TeleportError(
        ErrorCode.FILE_CHANGED,
        `"${path}" changed on the host since it was listed`,
      );
      this.#settle(file, changed);
      return;
    }
    file.sequence = new ChunkSequence(path, size);
  }

  #chunks(chunks: ChunkRef[]): void {
    const file = this.#current;
    if (file?.sequence === undefined) return;
    try {
      file.sequence.accept(chunks);
      file.listing.add(chunks);
    } catch (err) {
      this.#settle(file, err);
    }
  }

  #end(digest: FileEnd): void {
    const file = this.#current;
    if (file?.sequence === undefined) return;
    try {
      file.sequence.end(digest);
      this.#settle(file, undefined);
    } catch (err) {
      this.#settle(file, err);
    }
  }

  #only(): FedFile | undefined {
    if (!this.#ownManifest) return undefined;
    return this.#byPath.values().next().value;
  }

  #settle(file: FedFile, failure: unknown): void {
    if (failure === undefined) file.listing.finish();
    else file.listing.fail(failure);
    file.sequence = undefined;
    if (this.#current === file) this.#current = undefined;
    this.#byPath.delete(file.node.entry.path);
  }
}
