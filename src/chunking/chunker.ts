/**
 * Where chunk boundaries fall. A chunker looks at the bytes not yet assigned to a chunk and says
 * how long the next chunk is, or that it needs more bytes. Fixed-size chunking is the baseline;
 * content-defined chunking plugs in behind the same interface.
 */

export interface Chunker {
  /** The longest chunk this chunker produces; readers buffer at least this much. */
  readonly maxChunkSize: number;
  /**
   * Length of the next chunk at the start of `data`, or 0 when more bytes are needed to decide.
   * At end of file (`eof`), a non-empty `data` always yields a chunk.
   */
  nextChunkLength(data: Uint8Array, eof: boolean): number;
}

export const DEFAULT_CHUNK_SIZE = 1024 * 1024;

export class FixedChunker implements Chunker {
  readonly maxChunkSize: number;

  constructor(chunkSize = DEFAULT_CHUNK_SIZE) {
    if (!Number.isInteger(chunkSize) || chunkSize <= 0) throw new RangeError(`bad chunk size ${chunkSize}`);
    this.maxChunkSize = chunkSize;
  }

  nextChunkLength(data: Uint8Array, eof: boolean): number {
    if (data.length >= this.maxChunkSize) return this.maxChunkSize;
    return eof ? data.length : 0;
  }
}
