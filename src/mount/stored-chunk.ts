/**
 * A chunk verified by this process that lies in the chunk store: a reader is answered from its
 * pack (a range of the file handed to the kernel, fuse-session.ts) instead of from a copy in
 * JavaScript memory, as long as the pack's lock still vouches for the bytes (pack-files.ts).
 */
import { readWhole } from "./chunk-files.js";
import type { HeldRange } from "./fuse-session.js";
import type { PackLocation } from "./pack-files.js";

/** The packs' descriptors, for bytes verified under a lock generation (PackFiles.heldFd). */
export interface HeldPacks {
  heldFd(pack: number, generation: number): number | undefined;
}

export class StoredChunk {
  readonly at: PackLocation;
  readonly #generation: number;
  readonly #packs: HeldPacks;

  constructor(at: PackLocation, generation: number, packs: HeldPacks) {
    this.at = at;
    this.#generation = generation;
    this.#packs = packs;
  }

  get size(): number {
    return this.at.size;
  }

  /** Whether the pack still vouches for the bytes (nothing can have punched them since). */
  get held(): boolean {
    return this.#packs.heldFd(this.at.pack, this.#generation) !== undefined;
  }

  /** Its bytes copied out of the pack; undefined once they are no longer vouched for. */
  bytes(): Buffer | undefined {
    const fd = this.#packs.heldFd(this.at.pack, this.#generation);
    return fd === undefined ? undefined : readWhole(fd, this.at.position, this.at.size);
  }

  /** Bytes [from, to) of the chunk, as a range of its pack looked up when the reply is sent. */
  slice(from: number, to: number): HeldRange {
    const position = this.at.position + from;
    const length = to - from;
    return {
      length,
      open: () => {
        const fd = this.#packs.heldFd(this.at.pack, this.#generation);
        return fd === undefined ? undefined : { fd, position, length };
      },
    };
  }
}

/** A verified chunk: its bytes, or where they lie in the store. */
export type Chunk = Buffer | StoredChunk;
