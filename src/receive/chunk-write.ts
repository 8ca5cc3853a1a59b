import type { ChunkRequest } from "../wire/messages.js";

/** A chunk to fetch and where it goes: written at `at` (its offset by default) into the file open as `fd`. */
export interface ChunkWrite extends ChunkRequest {
  fd: number;
  /** Where in `fd` the chunk goes, when not at its offset in the file (a mount's cache pack). */
  at?: number;
}
