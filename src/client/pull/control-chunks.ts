/**
 * Chunks fetched over the control connection itself, with no data streams: how a host pulls
 * an upload from its pusher, which it cannot dial (push/). Each chunk is checked against its
 * hash by HostConnection.fetchChunks and written as a data stream writes it.
 */
import { MAX_CHUNKS_PER_REQUEST } from "../../wire/messages.js";
import type { TeleportClient } from "../client.js";
import { GatheredWrites } from "../pool/chunk-writer.js";
import type { ChunkWrite, PoolReport } from "../pool/stream-pool.js";

/**
 * Bytes asked for and not yet written: a few batches in flight keep one connection busy across
 * its round trip on a LAN, and bound what the pusher reads ahead.
 */
export const CONTROL_WINDOW_BYTES = 16 * 1024 * 1024;
const CONTROL_BATCH_BYTES = 2 * 1024 * 1024;

export class ControlChunks {
  readonly #client: TeleportClient;
  readonly windowBytes = CONTROL_WINDOW_BYTES;
  readonly batchBytes = CONTROL_BATCH_BYTES;
  /** Unused: there is no pool to size. */
  rttMs: number | undefined;

  constructor(client: TeleportClient) {
    this.#client = client;
  }

  async fetch(chunks: ChunkWrite[]): Promise<void> {
    for (let at = 0; at < chunks.length; at += MAX_CHUNKS_PER_REQUEST) {
      const writes = new GatheredWrites(this.#client.pool);
      try {
        await this.#client.fetchChunks(chunks.slice(at, at + MAX_CHUNKS_PER_REQUEST), (request, data) =>
          writes.add(request, data),
        );
        writes.flush();
      } finally {
        writes.discard();
      }
    }
  }

  start(): void {}

  close(): Promise<PoolReport> | undefined {
    return undefined;
  }
}
