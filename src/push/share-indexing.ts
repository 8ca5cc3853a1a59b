/**
 * A host that takes uploads hashes its share once as it starts, in the background: the chunk
 * index then knows every file in it, so an upload of bytes the share already holds under any
 * name copies them locally instead of moving them. It is a manifest walk sent nowhere: the same
 * file-state records a pull's manifest leaves, and files unchanged since are not read again.
 */
import { defaultChunker } from "../chunking/chunker.js";
import { toTeleportError } from "../errors.js";
import { FileStates } from "../serve/file-states.js";
import { ManifestStream } from "../serve/manifest-stream.js";
import { RecentChunks } from "../serve/recent-chunks.js";
import type { Share } from "../serve/share.js";
import type { ChunkIndex } from "../store/chunk-index.js";

/** The walk's own small ring: nothing it reads is asked for again. */
const INDEXING_RING_BYTES = 4 * 1024 * 1024;

/** Starts hashing `share` into `index`; returns what stops it. */
export function indexShare(
  share: Share,
  index: ChunkIndex,
  onNotice: ((message: string) => void) | undefined,
): () => void {
  const abort = new AbortController();
  const chunker = defaultChunker();
  const sources = {
    share,
    chunker,
    index,
    recent: RecentChunks.standalone(INDEXING_RING_BYTES),
    fileStates: new FileStates(index, chunker.id),
  };
  const walk = new ManifestStream(sources, async () => {}, {
    entryErrors: true,
    hardLinks: false,
    xattrs: false,
    signal: abort.signal,
  });
  const started = performance.now();
  walk.run("").then(
    () => onNotice?.(`share indexed for uploads in ${((performance.now() - started) / 1000).toFixed(1)} s`),
    (err: unknown) => {
      if (!abort.signal.aborted) onNotice?.(`share not indexed for uploads: ${toTeleportError(err).detail}`);
    },
  );
  return () => abort.abort();
}
