/**
 * The bodies of WATCH and CHANGES (Feature.WATCH, `pull --watch`): a client subscribes to a path
 * of the share and the host streams the paths beneath it that changed or went, batch by batch.
 * Kept apart from messages.ts, whose catalogue registers them.
 */
import { array, type Codec, struct, uint8, uint32, utf8 } from "./codec.js";
import { MAX_PATH_BYTES } from "./limits.js";

const path = utf8(MAX_PATH_BYTES);

/** Paths in one CHANGES frame, at most; a bigger batch continues in the next (CHANGES_MORE). */
export const MAX_CHANGED_PATHS = 1024;
/**
 * Path bytes the host puts in one CHANGES frame: the frame stays under frame.ts's large-body
 * threshold, so it is never bulk.
 */
export const MAX_CHANGES_PATH_BYTES = 48 * 1024;

/** A subscription to what changes beneath `path` ("" is the whole share). */
export interface WatchRequest {
  credit: number;
  path: string;
}
export const watchRequestCodec: Codec<WatchRequest> = struct<WatchRequest>({ credit: uint32, path });

/** Bits of Changes.flags. */
export const ChangesFlag = {
  /**
   * The host lost track (its queue of changed paths overflowed, or its watcher failed): the
   * client pulls the whole watched path again. `changed` and `removed` are then empty.
   */
  RESYNC: 1,
  /** The batch goes on in the next CHANGES frame; the client acts once a frame comes without it. */
  MORE: 2,
} as const;

/**
 * A batch of changes beneath the watched path, as wire paths relative to the share root.
 * `sequence` counts the subscription's frames from 1: a gap means frames were lost, and the
 * client resyncs. The first frame (sequence 1) comes once the host watches, empty, so the client
 * knows changes from then on are seen.
 */
export interface Changes {
  sequence: number;
  flags: number;
  /** Files and folders created or written (a folder: everything beneath it too). */
  changed: string[];
  removed: string[];
}
export const changesCodec: Codec<Changes> = struct<Changes>({
  sequence: uint32,
  flags: uint8,
  changed: array(path, MAX_CHANGED_PATHS),
  removed: array(path, MAX_CHANGED_PATHS),
});
