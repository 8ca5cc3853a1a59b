import type { ChunkRequest } from "../wire/messages.js";

/** A chunk to fetch and where it goes: written at its offset into the file open as `fd`. */
export interface ChunkWrite extends ChunkRequest {
  fd: number;
}
