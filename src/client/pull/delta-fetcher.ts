/**
 * Changed chunks of files whose old copy is at the destination, fetched as deltas (Feature.DELTA):
 * the old bytes around the chunk are signed (delta/signature.ts) and sent in batches of DELTA
 * requests on the control connection, several in flight; the host answers with a script of
 * block copies and literal bytes, and the chunk is rebuilt (delta/rebuild.ts), checked against
 * its BLAKE3 hash from the manifest and only then written. Anything else (the host does not
 * have it, a script that does not rebuild it, a malformed answer) fetches the chunk whole.
 */
import { closeSync, readSync, writeSync } from "node:fs";
import { hashBytes, hashEquals } from "../../chunking/hash.js";
import { Decompressor } from "../../compression/zstd.js";
import { rebuild, type SignedWindow } from "../../delta/rebuild.js";
import { decodeOps, OP_BYTES } from "../../delta/script.js";
import { blockSizeFor, MAX_WINDOW_BYTES, type Signature, sign } from "../../delta/signature.js";
import { ErrorCode, TeleportError } from "../../errors.js";
import type { DeltaChunks, DeltaOutcome, PlannedFile } from "../../receive/chunk-planner.js";
import type { OldCopyOpener } from "../../receive/old-copies.js";
import type { Work } from "../../receive/work.js";
import { decodeMessage } from "../../wire/codec.js";
import {
  type DeltaItem,
  type DeltaRequest,
  DeltaStatus,
  deltaDataCodec,
  LiteralCoding,
  MAX_DELTA_CHUNK_BYTES,
  MAX_DELTA_ITEMS,
} from "../../wire/delta-messages.js";
import { type ChunkRef, MessageType } from "../../wire/messages.js";
import type { PendingRequest } from "../channel.js";
import { emptyDeltaReport } from "./summary.js";

/** Chunks smaller than this are fetched whole: a round trip and a signature buy little. */
const MIN_DELTA_CHUNK_BYTES = 1024;
/** Old files up to this size are signed whole; in larger ones, the chunk's neighbourhood. */
const WHOLE_OLD_FILE_BYTES = 256 * 1024;
/** Chunk bytes per DELTA request, and signature bytes (the host takes requests up to 1 MiB). */
const REQUEST_CHUNK_BYTES = 4 * 1024 * 1024;
const REQUEST_SIGNATURE_BYTES = 256 * 1024;
/** Old windows and chunks held for requests in flight, at most: the memory of deltas is bounded. */
const IN_FLIGHT_BYTES = 32 * 1024 * 1024;
/** DELTA requests open at once: enough to keep the host busy while answers cross the network. */
const MAX_REQUESTS_IN_FLIGHT = 4;
/**
 * A file whose first deltas found (almost) nothing of its old copy gets no more: its chunks go
 * whole over the data streams, not through signatures, matching and the control connection.
 */
const MISSES_BEFORE_GIVING_UP = 2;
const MISS_LITERAL_SHARE = 0.9;

/** What an item's answer may take on the wire beyond its chunk's bytes (header, script, zstd bound). */
const ANSWER_OVERHEAD_BYTES = 128;

/** Where DELTA requests go: the control connection (TeleportClient.requestDeltas). */
export interface DeltaChannel {
  /** Sends the request; returns what cancels it. */
  requestDeltas(request: DeltaRequest, pending: PendingRequest): () => void;
}

/** A chunk to ask for as a delta, with the old bytes it was signed against. */
export interface PreparedDelta {
  file: PlannedFile;
  chunk: ChunkRef;
  window: SignedWindow;
  item: DeltaItem;
}

/** Old bytes and their signature. */
interface SignedOldBytes {
  window: SignedWindow;
  signature: Signature;
}

export class DeltaFetcher implements DeltaChunks {
  readonly report = emptyDeltaReport();
  readonly #channel: DeltaChannel;
  readonly #openOldCopy: OldCopyOpener;
  readonly #readLocally: (bytes: number) => void;
  readonly #work: Work;
  readonly #decompressor = new Decompressor();
  #batch: PreparedDelta[] = [];
  #batchBytes = 0;
  #batchSignatureBytes = 0;
  #flushScheduled = false;
  #inFlightBytes = 0;
  #outcome: DeltaOutcome | undefined;
  /** Cancels of the requests open (each also listens to the pull's signal while it is open). */
  readonly #open = new Set<() => void>();
  /** The last small old file signed whole: its other changed chunks are signed against it too. */
  #wholeOldFile: { file: PlannedFile; signed: SignedOldBytes } | undefined;
  /** Per file, deltas that found little of the old copy, and deltas that paid. */
  readonly #results = new WeakMap<PlannedFile, { misses: number; hits: number }>();

  constructor(options: {
    channel: DeltaChannel;
    openOldCopy: OldCopyOpener;
    readLocally: (bytes: number) => void;
    work: Work;
  }) {
    this.#channel = options.channel;
    this.#openOldCopy = options.openOldCopy;
    this.#readLocally = options.readLocally;
    this.#work = options.work;
  }

  offer(file: PlannedFile, chunk: ChunkRef, outcome: DeltaOutcome): boolean {
    const results = this.#results.get(file);
    if (results !== undefined && results.hits === 0 && results.misses >= MISSES_BEFORE_GIVING_UP)
      return false;
    const delta = this.#prepare(file, chunk);
    if (delta === undefined) return false;
    this.#queue(delta, outcome);
    return true;
  }

  room(): Promise<void> | undefined {
    return this.#mustWait ? this.#whenRoom() : undefined;
  }

  /** Old windows in flight hold all the memory they may, or the batch is full and cannot go yet. */
  get #mustWait(): boolean {
    return this.#inFlightBytes > IN_FLIGHT_BYTES || this.#batchFull;
  }

  get #batchFull(): boolean {
    return (
      this.#batch.length >= MAX_DELTA_ITEMS ||
      this.#batchBytes >= REQUEST_CHUNK_BYTES ||
      this.#batchSignatureBytes >= REQUEST_SIGNATURE_BYTES
    );
  }

  /** The chunk with its signed old window, if it is worth a delta and the old copy is readable. */
  #prepare(file: PlannedFile, chunk: ChunkRef): PreparedDelta | undefined {
    if (chunk.size < MIN_DELTA_CHUNK_BYTES || chunk.size > MAX_DELTA_CHUNK_BYTES) return undefined;
    const signed = this.#wholeOldFile?.file === file ? this.#wholeOldFile.signed : this.#sign(file, chunk);
    if (signed === undefined) return undefined;
    const { window, signature } = signed;
    const item: DeltaItem = {
      hash: chunk.hash,
      size: chunk.size,
      path: file.wirePath,
      offset: chunk.offset,
      blockSize: signature.blockSize,
      windowLength: signature.windowLength,
      signature: signature.entries,
    };
    return { file, chunk, window, item };
  }

  /** The old bytes around `chunk` (all of a small old file, kept for its other chunks), signed. */
  #sign(file: PlannedFile, chunk: ChunkRef): SignedOldBytes | undefined {
    const old = this.#openOldCopy(file.finalPath);
    if (old === undefined) return undefined;
    let bytes: Buffer;
    let wholeFile: boolean;
    try {
      const oldSize = Number(old.stats.size);
      wholeFile = oldSize <= WHOLE_OLD_FILE_BYTES;
      const start = wholeFile ? 0 : Math.max(0, chunk.offset - chunk.size);
      const end = wholeFile ? oldSize : Math.min(oldSize, chunk.offset + 2 * chunk.size);
      if (end - start < MIN_DELTA_CHUNK_BYTES / 2 || end - start > MAX_WINDOW_BYTES) return undefined;
      bytes = Buffer.allocUnsafe(end - start);
      if (readSync(old.fd, bytes, 0, bytes.length, start) !== bytes.length) return undefined;
    } catch {
      return undefined; // unreadable: fetched whole
    } finally {
      closeSync(old.fd);
    }
    this.#readLocally(bytes.length);
    const signature = sign(bytes, blockSizeFor(bytes.length));
    const signed = { window: { bytes, blockSize: signature.blockSize }, signature };
    this.#wholeOldFile = wholeFile ? { file, signed } : undefined;
    return signed;
  }

  #queue(delta: PreparedDelta, outcome: DeltaOutcome): void {
    this.#outcome = outcome;
    this.#batch.push(delta);
    this.#batchBytes += delta.chunk.size;
    this.#batchSignatureBytes += delta.item.signature.length;
    this.#inFlightBytes += delta.chunk.size + delta.window.bytes.length;
    if (this.#batchFull) {
      this.flush();
    } else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        this.flush();
      });
    }
  }

  /** Sends the batch as one DELTA request, unless MAX_REQUESTS_IN_FLIGHT are open (it goes when one ends). */
  flush(): void {
    const outcome = this.#outcome;
    if (this.#batch.length === 0 || outcome === undefined || this.#work.failed) return;
    if (this.#open.size >= MAX_REQUESTS_IN_FLIGHT) return;
    const batch = this.#batch;
    this.#batch = [];
    this.#batchBytes = 0;
    this.#batchSignatureBytes = 0;
    this.#work.track(this.#request(batch, outcome));
  }

  async #whenRoom(): Promise<void> {
    while (this.#mustWait) {
      this.#work.throwIfFailed();
      this.flush();
      await this.#work.next();
    }
  }

  async #request(batch: PreparedDelta[], outcome: DeltaOutcome): Promise<void> {
    const answered = new Array<boolean>(batch.length).fill(false);
    let cancel: (() => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        const items = batch.map((delta) => delta.item);
        this.report.bytesSent += items.reduce((sum, item) => sum + requestBytes(item), 0);
        const pending: PendingRequest = {
          credit: items.reduce((sum, item) => sum + answerBound(item), 0),
          onFrame: (type, body) => {
            this.#onAnswer(batch, answered, type, body, outcome);
            return false;
          },
          onEnd: resolve,
          onError: reject,
        };
        cancel = this.#channel.requestDeltas({ items }, pending);
        this.#open.add(cancel);
        this.#work.signal.addEventListener("abort", cancel, { once: true });
      });
    } catch (err) {
      this.#work.throwIfFailed();
      if (!(err instanceof TeleportError) || err.code === ErrorCode.CONNECTION) throw err;
      // A refused or malformed answer: what it did not rebuild is fetched whole.
    } finally {
      if (cancel !== undefined) {
        this.#open.delete(cancel);
        this.#work.signal.removeEventListener("abort", cancel);
      }
      for (const delta of batch) this.#inFlightBytes -= delta.chunk.size + delta.window.bytes.length;
    }
    batch.forEach((delta, i) => {
      if (!answered[i]) this.#fetchWhole(delta, outcome);
    });
    this.flush();
  }

  /** One DELTA_DATA frame: each result applied, its literal bytes accounted for to the last. */
  #onAnswer(
    batch: PreparedDelta[],
    answered: boolean[],
    type: number,
    body: Buffer,
    outcome: DeltaOutcome,
  ): void {
    if (type !== MessageType.DELTA_DATA)
      throw new TeleportError(ErrorCode.PROTOCOL, `DELTA answered with type ${type}`);
    this.report.bytesReceived += body.length;
    const answer = decodeMessage(deltaDataCodec, body);
    const literals = this.#literals(answer, batch);
    let literalAt = 0;
    for (const result of answer.results) {
      const delta = batch[result.index];
      if (delta === undefined || answered[result.index])
        throw new TeleportError(
          ErrorCode.PROTOCOL,
          `DELTA result for item ${result.index} unasked or repeated`,
        );
      answered[result.index] = true;
      const ops = result.status === DeltaStatus.SCRIPT ? decodeOps(result.ops) : undefined;
      if (ops === undefined) {
        this.#fetchWhole(delta, outcome);
        continue;
      }
      const literalBytes = ops.reduce((sum, op) => sum + op.literal, 0);
      if (literalBytes > literals.length - literalAt)
        throw new TeleportError(ErrorCode.PROTOCOL, "DELTA scripts use more literal bytes than sent");
      const chunk = rebuild(
        delta.window,
        ops,
        literals.subarray(literalAt, literalAt + literalBytes),
        delta.chunk.size,
      );
      literalAt += literalBytes;
      if (typeof chunk === "string" || !hashEquals(hashBytes(chunk), delta.chunk.hash))
        this.#fetchWhole(delta, outcome);
      else this.#write(delta, chunk, literalBytes, outcome);
    }
    if (literalAt !== literals.length)
      throw new TeleportError(ErrorCode.PROTOCOL, "DELTA literal bytes left over");
  }

  /** A frame's literal bytes, decompressed; never more than the chunks it answers could need. */
  #literals(
    answer: { literalBytes: number; literalCoding: number; literals: Buffer },
    batch: PreparedDelta[],
  ): Buffer {
    const most = batch.reduce((sum, delta) => sum + delta.chunk.size, 0);
    if (answer.literalBytes > most)
      throw new TeleportError(ErrorCode.PROTOCOL, "DELTA literal bytes over the chunks'");
    if (answer.literalCoding === LiteralCoding.RAW) {
      if (answer.literals.length !== answer.literalBytes)
        throw new TeleportError(ErrorCode.PROTOCOL, "DELTA literal bytes of the wrong length");
      return answer.literals;
    }
    if (answer.literalCoding !== LiteralCoding.ZSTD)
      throw new TeleportError(ErrorCode.PROTOCOL, `unknown literal coding ${answer.literalCoding}`);
    const literals = Buffer.allocUnsafe(answer.literalBytes);
    this.#decompressor.decompressExactly(literals, answer.literals);
    return literals;
  }

  /** A rebuilt and verified chunk into its part file. */
  #write(delta: PreparedDelta, chunk: Buffer, literalBytes: number, outcome: DeltaOutcome): void {
    let written = 0;
    while (written < chunk.length)
      written += writeSync(
        delta.file.fd,
        chunk,
        written,
        chunk.length - written,
        delta.chunk.offset + written,
      );
    const report = this.report;
    report.chunks++;
    report.bytes += chunk.length;
    report.literalBytes += literalBytes;
    report.bytesSaved = report.bytes - report.bytesSent - report.bytesReceived;
    const results = this.#results.get(delta.file) ?? { misses: 0, hits: 0 };
    if (literalBytes > MISS_LITERAL_SHARE * chunk.length) results.misses++;
    else results.hits++;
    this.#results.set(delta.file, results);
    outcome.rebuilt(delta.file, delta.chunk, literalBytes);
  }

  #fetchWhole(delta: PreparedDelta, outcome: DeltaOutcome): void {
    this.report.fetchedWhole++;
    outcome.fetchWhole(delta.file, delta.chunk);
  }
}

/** What an item takes in a DELTA request. */
function requestBytes(item: DeltaItem): number {
  return 32 + 4 + 2 + Buffer.byteLength(item.path) + 8 + 4 + 4 + 4 + item.signature.length;
}

/**
 * The most an honest answer to `item` takes: its chunk as literals (the host compresses them only
 * when that makes them smaller) and a script of at most one op per block copied, plus one.
 */
function answerBound(item: DeltaItem): number {
  return item.size + ANSWER_OVERHEAD_BYTES + OP_BYTES * (Math.ceil(item.size / item.blockSize) + 2);
}
