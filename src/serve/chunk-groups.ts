/**
 * How a GET_CHUNKS is cut for sending: chunks that lie back to back in one file form a run, read
 * with one readv (or sent with one sendfile); runs are gathered into groups, each sent with one
 * write. Pure functions over the request's list, in its order.
 */
import { FRAME_HEADER_SIZE } from "../wire/frame.js";
import { CHUNK_DATA_HEADER_SIZE, type ChunkRequest } from "../wire/messages.js";

/** A CHUNK_DATA frame's bytes before the chunk's own. */
export const CHUNK_FRAME_PREFIX = FRAME_HEADER_SIZE + CHUNK_DATA_HEADER_SIZE;
/** Back-to-back chunks of one file are read together, and runs sent together, up to this many bytes. */
export const READ_RUN_BYTES = 2 * 1024 * 1024;

export type NonEmpty<T> = [T, ...T[]];
/** Chunks back to back in one file, in order. */
export type ChunkRun = NonEmpty<ChunkRequest>;
/** Runs sent with one write. */
export type ChunkGroup = NonEmpty<ChunkRun>;

export function lastOf<T>(items: Readonly<NonEmpty<T>>): T {
  return items[items.length - 1] ?? items[0];
}

/** Where a run's last chunk ends in its file. */
export function runEnd(run: ChunkRun): number {
  const last = lastOf(run);
  return last.offset + last.size;
}

/** The bytes of a group's CHUNK_DATA frames, headers included. */
export function groupFrameBytes(group: readonly ChunkRun[]): number {
  let total = 0;
  for (const run of group) for (const request of run) total += CHUNK_FRAME_PREFIX + request.size;
  return total;
}

/** Splits requests into runs of chunks that lie back to back in one file (at most READ_RUN_BYTES). */
export function contiguousRuns(requests: readonly ChunkRequest[]): ChunkRun[] {
  const runs: ChunkRun[] = [];
  let run: ChunkRun | undefined;
  let end = -1;
  let bytes = 0;
  for (const request of requests) {
    const follows = run !== undefined && request.path === run[0].path && request.offset === end;
    if (run !== undefined && follows && bytes + request.size <= READ_RUN_BYTES) {
      run.push(request);
      bytes += request.size;
    } else {
      run = [request];
      runs.push(run);
      bytes = request.size;
    }
    end = request.offset + request.size;
  }
  return runs;
}

/** Gathers runs into groups of at most READ_RUN_BYTES (a larger run is a group of its own). */
export function writeGroups(runs: readonly ChunkRun[]): ChunkGroup[] {
  const groups: ChunkGroup[] = [];
  let group: ChunkGroup | undefined;
  let bytes = 0;
  for (const run of runs) {
    const runBytes = groupFrameBytes([run]);
    if (group !== undefined && bytes + runBytes <= READ_RUN_BYTES) {
      group.push(run);
      bytes += runBytes;
    } else {
      group = [run];
      groups.push(group);
      bytes = runBytes;
    }
  }
  return groups;
}

/** `group` cut into groups of at most `runs` runs (files a send holds open at once). */
export function piecesOf(group: ChunkGroup, runs: number): ChunkGroup[] {
  const pieces: ChunkGroup[] = [];
  for (let at = 0; at < group.length; at += runs) {
    const [first, ...others] = group.slice(at, at + runs);
    if (first !== undefined) pieces.push([first, ...others]);
  }
  return pieces;
}
