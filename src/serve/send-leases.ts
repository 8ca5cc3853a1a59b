/**
 * Buffers for data read and not yet written to a socket, each held against two budgets: the
 * connection's own and the host's, shared by all connections in turns by client. The host's
 * memory stays bounded however many clients pull at once, and each gets its turn at the disk.
 */
import type { BufferPool } from "../engine/buffer-pool.js";
import { ByteBudget } from "../engine/byte-budget.js";

/**
 * Chunk data one connection may have read and queued at once: the group being sent, the next one
 * read ahead, and the socket's queue (Connection's write buffer).
 */
export const CONNECTION_SEND_BYTES = 8 * 1024 * 1024;

/** A pooled buffer of frames and the send budget it holds, both given back by `release`. */
export interface Lease {
  frames: Buffer;
  release: () => void;
}

export class SendLeases {
  readonly #pool: BufferPool;
  readonly #shared: ByteBudget;
  readonly #own = new ByteBudget(CONNECTION_SEND_BYTES);
  /** Whose turn this connection's reads take in the host's budget: its client's, once known. */
  #owner: unknown = this;

  constructor(pool: BufferPool, shared: ByteBudget) {
    this.#pool = pool;
    this.#shared = shared;
  }

  /** The client this connection belongs to (HELLO's clientId): its connections share one turn. */
  setOwner(owner: unknown): void {
    this.#owner = owner;
  }

  /** A pooled buffer of `bytes` once both budgets have room for it (waiting in line for them). */
  async lease(bytes: number, signal: AbortSignal): Promise<Lease> {
    const own = await this.#own.take(bytes, signal);
    let taken: number;
    try {
      taken = await this.#shared.take(bytes, signal, this.#owner);
    } catch (err) {
      this.#own.give(own);
      throw err;
    }
    const frames = this.#pool.acquire(bytes);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#pool.release(frames);
      this.#own.give(own);
      this.#shared.give(taken);
    };
    return { frames, release };
  }
}
