/**
 * How a mount fetches chunks it does not hold: by hash, from the host, each checked against the
 * hash the manifest committed to before it is handed over.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import type { ChunkRef } from "../wire/messages.js";
import type { MountHost } from "./mount-host.js";

/**
 * Fetches `refs` (chunks of the file at `path`), calling `onChunk` with each one's verified bytes
 * (the callee's own copy) as it arrives; rejects if any is missing or wrong.
 */
export type ChunkFetcher = (
  path: string,
  refs: readonly ChunkRef[],
  onChunk: (ref: ChunkRef, bytes: Buffer) => void,
  signal: AbortSignal,
) => Promise<void>;

/**
 * One GET_CHUNKS on the control connection. fetchChunks checks each chunk's BLAKE3 against the
 * requested hash; readRange is not used, as its hash comes with the bytes (a hostile host could
 * send wrong bytes with a matching hash).
 */
export function controlFetcher(host: MountHost): ChunkFetcher {
  return async (path, refs, onChunk, signal) => {
    const client = await host.client(signal);
    const requests = refs.map((ref) => ({ hash: ref.hash, size: ref.size, path, offset: ref.offset, ref }));
    let received = 0;
    await client.fetchChunks(
      requests,
      (request, data) => {
        const bytes = Buffer.from(data); // the caller keeps its own copy: the pooled buffer goes back
        client.pool.release(data);
        received++;
        onChunk(request.ref, bytes);
      },
      { signal },
    );
    if (received !== refs.length)
      throw new TeleportError(ErrorCode.PROTOCOL, `the host did not send every chunk asked of "${path}"`);
  };
}
