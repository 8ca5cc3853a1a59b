/**
 * File bytes for a mount: a file's chunk list comes from its MANIFEST (the hashes committed
 * before any byte), and each read is put together from the chunks it covers, each verified
 * against its hash (ChunkSource). A sequential reader's next chunks are fetched ahead of it.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import { ChunkSequence } from "../receive/manifest-walker.js";
import type { ChunkRef } from "../wire/messages.js";
import { ChunkListing } from "./chunk-listing.js";
import type { ChunkSource } from "./chunk-source.js";
import type { Inode } from "./inode-table.js";
import type { MountHost } from "./mount-host.js";

/** How far ahead of a sequential reader chunks are fetched. */
const READ_AHEAD_BYTES = 4 << 20;
const READ_AHEAD_TIMEOUT_MS = 60_000;
/** A manifest still streaming after this is abandoned; the next read asks again. */
const LISTING_TIMEOUT_MS = 10 * 60_000;

export class RemoteFiles {
  readonly #host: MountHost;
  readonly #chunks: ChunkSource;
  /** Chunk lists by inode. */
  readonly #listings = new Map<number, ChunkListing>();
  /** Where each file's last read ended: a read starting there is sequential. */
  readonly #lastEnd = new Map<number, number>();

  constructor(host: MountHost, chunks: ChunkSource) {
    this.#host = host;
    this.#chunks = chunks;
  }

  /** The inode left the tree (its file changed or went on the host): its chunk list goes too. */
  forget(ino: number): void {
    this.#listings.delete(ino);
    this.#lastEnd.delete(ino);
  }

  /** `length` bytes of `node` at `offset` (the caller keeps the range within the file). */
  async read(node: Inode, offset: number, length: number, signal: AbortSignal): Promise<Uint8Array> {
    const listing = this.#listing(node);
    await listing.until(offset + length, signal);
    const chunks = listing.chunks;
    const covering = chunksCovering(chunks, offset, length);
    const sequential = this.#lastEnd.get(node.ino) === offset;
    this.#lastEnd.set(node.ino, offset + length);
    if (sequential) this.#readAhead(node.entry.path, chunks, offset + length);
    const fetched = await Promise.all(covering.map((ref) => this.#chunks.get(node.entry.path, ref, signal)));
    const out = Buffer.alloc(length); // what no chunk covers is a hole: zeros
    covering.forEach((ref, i) => {
      const from = Math.max(offset, ref.offset) - ref.offset;
      const to = Math.min(offset + length, ref.offset + ref.size) - ref.offset;
      fetched[i]?.copy(out, ref.offset + from - offset, from, to);
    });
    return out;
  }

  /**
   * A sequential reader's next chunks, fetched before the kernel asks (errors dropped: the read
   * that needs a chunk fetches it again and answers EIO if it fails).
   */
  #readAhead(path: string, chunks: ChunkRef[], from: number): void {
    const signal = AbortSignal.timeout(READ_AHEAD_TIMEOUT_MS);
    for (const ref of chunksCovering(chunks, from, READ_AHEAD_BYTES))
      this.#chunks.prefetch(path, [ref], signal);
  }

  /** The file's chunk list, streaming in or complete; a failed one is asked for again. */
  #listing(node: Inode): ChunkListing {
    let listing = this.#listings.get(node.ino);
    if (listing === undefined || listing.failed) {
      listing = new ChunkListing(node.entry.size);
      this.#listings.set(node.ino, listing);
      void this.#fill(node, listing);
    }
    return listing;
  }

  /**
   * Streams the file's manifest into `listing`, checked as a pull checks it (ChunkSequence: in
   * order, inside the file, and at FILE_END covering it but for holes, with the file hash).
   */
  async #fill(node: Inode, listing: ChunkListing): Promise<void> {
    const { path, size, mtimeMs } = node.entry;
    const sequence = new ChunkSequence(path, size);
    try {
      const signal = AbortSignal.timeout(LISTING_TIMEOUT_MS);
      const client = await this.#host.client(signal);
      for await (const event of client.manifest(path, signal)) {
        if (event.kind === "file-begin" && (event.entry.size !== size || event.entry.mtimeMs !== mtimeMs))
          throw new TeleportError(
            ErrorCode.FILE_CHANGED,
            `"${path}" changed on the host since it was listed`,
          );
        if (event.kind === "chunks") {
          sequence.accept(event.chunks);
          listing.add(event.chunks);
        }
        if (event.kind === "file-end") {
          sequence.end(event.digest);
          listing.complete();
          return;
        }
        if (event.kind === "entry-error") throw new TeleportError(ErrorCode.IO, event.failure.message);
      }
      throw new TeleportError(ErrorCode.PROTOCOL, `the manifest of "${path}" ended without FILE_END`);
    } catch (err) {
      listing.fail(err);
    }
  }
}

/** The chunks overlapping [offset, offset + length), found by binary search. */
function chunksCovering(chunks: ChunkRef[], offset: number, length: number): ChunkRef[] {
  let low = 0;
  let high = chunks.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const ref = chunks[middle];
    if (ref !== undefined && ref.offset + ref.size <= offset) low = middle + 1;
    else high = middle;
  }
  const covering: ChunkRef[] = [];
  for (let i = low; i < chunks.length; i++) {
    const ref = chunks[i];
    if (ref === undefined || ref.offset >= offset + length) break;
    covering.push(ref);
  }
  return covering;
}
