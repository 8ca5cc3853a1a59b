/**
 * How a mount fetches chunks it does not hold: by hash, from the host, each checked against the
 * hash the manifest committed to before it is handed over.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import { type ChunkRef, type ChunkRequest, MAX_CHUNKS_PER_REQUEST } from "../wire/messages.js";
import type { MountHost } from "./mount-host.js";
import type { Chunk } from "./stored-chunk.js";

/**
 * Fetches `refs` (chunks of the file at `path`), calling `onChunk` with each one's verified bytes
 * (the callee's own copy, or where the chunk store now holds them) as it arrives; rejects if any
 * is missing or wrong.
 */
export type ChunkFetcher = (
  path: string,
  refs: readonly ChunkRef[],
  onChunk: (ref: ChunkRef, chunk: Chunk) => void,
  signal: AbortSignal,
) => Promise<void>;

/** A merged request left without callers still ends by then. */
const MERGED_REQUEST_TIMEOUT_MS = 60_000;

/** One caller's fetch inside a merged request. */
interface Ask {
  readonly refs: readonly ChunkRef[];
  readonly onChunk: (ref: ChunkRef, chunk: Chunk) => void;
  readonly signal: AbortSignal;
  received: number;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
}

interface AskedChunk extends ChunkRequest {
  readonly ref: ChunkRef;
  readonly ask: Ask;
}

/**
 * GET_CHUNKS on the control connection. fetchChunks checks each chunk's BLAKE3 against the
 * requested hash; readRange is not used, as its hash comes with the bytes (a hostile host could
 * send wrong bytes with a matching hash). Fetches asked in one turn of the event loop (a folder's
 * small files, prefetched file by file) go as one request: one round trip, not one per file.
 */
export function controlFetcher(host: MountHost): ChunkFetcher {
  let queued: { path: string; ask: Ask }[] = [];
  return (path, refs, onChunk, signal) =>
    new Promise<void>((resolve, reject) => {
      queued.push({ path, ask: { refs, onChunk, signal, received: 0, resolve, reject } });
      if (queued.length > 1) return;
      queueMicrotask(() => {
        const asks = queued;
        queued = [];
        for (let at = 0; at < asks.length; ) {
          const group = [];
          for (let chunks = 0; at < asks.length; at++) {
            const next = asks[at];
            if (
              next === undefined ||
              (group.length > 0 && chunks + next.ask.refs.length > MAX_CHUNKS_PER_REQUEST)
            )
              break;
            chunks += next.ask.refs.length;
            group.push(next);
          }
          void fetchMerged(host, group);
        }
      });
    });
}

/** One GET_CHUNKS for the chunks of `asks`; each ask settles on its own (its signal, its chunks). */
async function fetchMerged(host: MountHost, asks: { path: string; ask: Ask }[]): Promise<void> {
  const only = asks.length === 1 ? asks[0] : undefined;
  const signal = only?.ask.signal ?? AbortSignal.timeout(MERGED_REQUEST_TIMEOUT_MS);
  // A lone ask ends with the request, which its signal aborts; merged ones each leave on their own.
  const leave = only === undefined ? asks.map(({ ask }) => leaveOnAbort(ask)) : [];
  const requests: AskedChunk[] = asks.flatMap(({ path, ask }) =>
    ask.refs.map((ref) => ({ hash: ref.hash, size: ref.size, path, offset: ref.offset, ref, ask })),
  );
  try {
    const client = await host.client(signal);
    await client.fetchChunks(
      requests,
      (request, data) => {
        const bytes = Buffer.from(data); // the caller keeps its own copy: the pooled buffer goes back
        client.pool.release(data);
        request.ask.received++;
        request.ask.onChunk(request.ref, bytes);
      },
      { signal },
    );
    for (const { path, ask } of asks) {
      if (ask.received === ask.refs.length) ask.resolve();
      else
        ask.reject(
          new TeleportError(ErrorCode.PROTOCOL, `the host did not send every chunk asked of "${path}"`),
        );
    }
  } catch (err) {
    for (const { ask } of asks) ask.reject(err);
  } finally {
    for (const stopListening of leave) stopListening();
  }
}

/** Rejects `ask` when its signal aborts; returns what stops listening. */
function leaveOnAbort(ask: Ask): () => void {
  const onAbort = () => ask.reject(ask.signal.reason);
  if (ask.signal.aborted) onAbort();
  else ask.signal.addEventListener("abort", onAbort, { once: true });
  return () => ask.signal.removeEventListener("abort", onAbort);
}

/**
 * Fetches of more than `batchBytes` (read-ahead) through `batch`, the stream pool; smaller ones,
 * a read waiting on its chunk or a folder's small files, through `single`, the control
 * connection: one round trip, never queued behind the pool's batches, and no pool started for
 * a mount that only reads a little.
 */
export function routedFetcher(single: ChunkFetcher, batch: ChunkFetcher, batchBytes: number): ChunkFetcher {
  return (path, refs, onChunk, signal) => {
    let bytes = 0;
    for (const ref of refs) bytes += ref.size;
    return (bytes > batchBytes ? batch : single)(path, refs, onChunk, signal);
  };
}
