/**
 * File bytes for a mount: a file's chunk list comes from its MANIFEST (the hashes committed
 * before any byte, file-listings.ts), and each read is put together from the chunks it covers,
 * each verified against its hash (ChunkSource). A sequential reader's next chunks are fetched
 * ahead of it (read-ahead.ts); the first read in a folder lists and fetches the small files
 * beside it (folder-prefetch.ts).
 */
import { setMaxListeners } from "node:events";
import type { ChunkRef } from "../wire/messages.js";
import { readWhole } from "./chunk-files.js";
import type { ChunkSource } from "./chunk-source.js";
import { FileListings } from "./file-listings.js";
import { FolderPrefetch } from "./folder-prefetch.js";
import type { ReadPiece } from "./fuse-session.js";
import type { Inode } from "./inode-table.js";
import type { MountHost } from "./mount-host.js";
import { ReadAhead } from "./read-ahead.js";
import type { Chunk } from "./stored-chunk.js";

/** A fetch ahead still running after this is given up; a read that needs its chunks asks again. */
const READ_AHEAD_TIMEOUT_MS = 60_000;
/** Listeners on a read's signal besides its chunks' (the session's deadline, the listing's wait). */
const LISTENERS_BESIDE_CHUNKS = 10;
/** A read whose stored chunks moved away (evicted) as it was copied out is made again this often. */
const READ_ATTEMPTS = 3;
/** The most a sequential reader is fetched ahead of, whatever the path allows (memory). */
const MAX_READ_AHEAD_BYTES = 64 << 20;

export interface RemoteFilesOptions {
  /**
   * The bytes in flight the path allows (the stream pool's tuned window): a sequential reader's
   * read-ahead grows to twice that, so the pool always has a window's worth to fetch.
   */
  pathWindowBytes?: () => number;
  /** The folder holding a file, for prefetching its small files; none without it. */
  folderOf?: (node: Inode) => Inode | undefined;
}

export class RemoteFiles {
  readonly #chunks: ChunkSource;
  readonly #listings: FileListings;
  readonly #readAhead = new ReadAhead();
  readonly #folders: FolderPrefetch;
  readonly #options: RemoteFilesOptions;

  constructor(host: MountHost, chunks: ChunkSource, options: RemoteFilesOptions = {}) {
    this.#chunks = chunks;
    this.#listings = new FileListings(host);
    this.#folders = new FolderPrefetch(host, this.#listings, chunks);
    this.#options = options;
  }

  /** The inode left the tree (its file changed or went on the host): its chunk list goes too. */
  forget(ino: number): void {
    this.#listings.forget(ino);
    this.#readAhead.forget(ino);
  }

  /** `length` bytes of `node` at `offset` (the caller keeps the range within the file), copied out. */
  async read(node: Inode, offset: number, length: number, signal: AbortSignal): Promise<Buffer> {
    for (let attempt = 1; ; attempt++) {
      const bytes = copied(await this.readPieces(node, offset, length, signal));
      if (bytes !== undefined) return bytes;
      if (attempt === READ_ATTEMPTS) throw new Error(`the chunks of "${node.entry.path}" kept moving away`);
    }
  }

  /**
   * The same bytes as pieces to send back to back: views of the chunks in memory, ranges of those
   * in the store (zeros for holes), so a kernel read is answered without a buffer assembled and
   * copied for it.
   */
  async readPieces(node: Inode, offset: number, length: number, signal: AbortSignal): Promise<ReadPiece[]> {
    const folder = this.#options.folderOf?.(node);
    if (folder !== undefined) this.#folders.reached(folder, this.#options.folderOf?.(folder));
    const listing = this.#listings.get(node);
    await listing.until(offset + length, signal);
    const covering = listing.covering(offset, length);
    const path = node.entry.path;
    // Each chunk's fetch listens to the read's signal: a 1 MiB read waits on ~16.
    setMaxListeners(2 * covering.length + LISTENERS_BESIDE_CHUNKS, signal);
    const fetched = Promise.all(covering.map((ref) => this.#chunks.get(path, ref, signal)));
    this.#fetchAhead(node, offset, length);
    return pieces(covering, await fetched, offset, length);
  }

  /**
   * A sequential reader's next chunks, those the list already describes, fetched as one batch
   * before the kernel asks (errors dropped: the read that needs a chunk fetches it again and
   * answers EIO if that fails).
   */
  #fetchAhead(node: Inode, offset: number, length: number): void {
    const window = Math.min(MAX_READ_AHEAD_BYTES, 2 * (this.#options.pathWindowBytes?.() ?? 0));
    const ahead = this.#readAhead.read(node.ino, offset, length, window);
    if (ahead === undefined) return;
    const to = Math.min(ahead.to, node.entry.size);
    if (to <= ahead.from) return;
    const refs = this.#listings.get(node).covering(ahead.from, to - ahead.from);
    if (refs.length > 0)
      this.#chunks.prefetch(node.entry.path, refs, AbortSignal.timeout(READ_AHEAD_TIMEOUT_MS));
  }
}

/** The bytes [offset, offset + length) as views of the chunks covering them, zeros for holes. */
export function pieces(
  covering: readonly ChunkRef[],
  chunks: readonly Chunk[],
  offset: number,
  length: number,
): ReadPiece[] {
  const out: ReadPiece[] = [];
  let reached = offset;
  const end = offset + length;
  covering.forEach((ref, i) => {
    const chunk = chunks[i];
    const from = Math.max(reached, ref.offset);
    const to = Math.min(end, ref.offset + ref.size);
    if (chunk === undefined || to <= from) return;
    if (from > reached) out.push(zeros(from - reached));
    const [start, stop] = [from - ref.offset, to - ref.offset];
    out.push(Buffer.isBuffer(chunk) ? chunk.subarray(start, stop) : chunk.slice(start, stop));
    reached = to;
  });
  if (reached < end) out.push(zeros(end - reached));
  return out;
}

/** The pieces' bytes in one buffer; undefined if a stored range moved away. */
function copied(pieces: readonly ReadPiece[]): Buffer | undefined {
  const arrays: Uint8Array[] = [];
  for (const piece of pieces) {
    if (piece instanceof Uint8Array) arrays.push(piece);
    else {
      const range = piece.open();
      const bytes = range === undefined ? undefined : readWhole(range.fd, range.position, range.length);
      if (bytes === undefined) return undefined;
      arrays.push(bytes);
    }
  }
  return Buffer.concat(arrays);
}

/** A hole's bytes: views of one shared zeroed buffer where it is large enough (never written). */
const ZEROS = Buffer.alloc(1 << 20);
function zeros(length: number): Buffer {
  return length <= ZEROS.length ? ZEROS.subarray(0, length) : Buffer.alloc(length);
}
