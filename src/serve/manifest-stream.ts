/**
 * The host's side of MANIFEST: the walk of a file or folder, streamed as ENTRIES for folders and
 * symlinks and FILE_BEGIN, CHUNKS..., FILE_END per file, each frame sent once the request has
 * credit for it. Files are those the walk opened beneath their folders' descriptors, so a folder
 * swapped for a symlink while a manifest waits for credit is never followed. An entry the host
 * cannot read becomes an ENTRY_ERROR when the client understands them, and the walk goes on.
 */
import { readSync } from "node:fs";
import type { Chunker } from "../chunking/chunker.js";
import { chunkBytes, collectChunks, type FileDigest } from "../chunking/manifest.js";
import { UNINDEXED_FILE_BYTES } from "../chunking/thresholds.js";
import { closeQuietly } from "../engine/file-io.js";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { platformIo } from "../platform/io.js";
import type { ChunkIndex } from "../store/chunk-index.js";
import { fileChunks } from "../store/file-chunks.js";
import type { Codec } from "../wire/codec.js";
import {
  type ChunkRef,
  chunksCodec,
  type Entry,
  EntryKind,
  entriesCodec,
  entryErrorCodec,
  entrySkippedCodec,
  fileBeginCodec,
  fileEndCodec,
  MAX_ENTRIES_PER_FRAME,
  MessageType,
  type Xattr,
} from "../wire/messages.js";
import { type FileStates, isListed } from "./file-states.js";
import { type FileIdentity, type RecentChunks, WHOLE_READ_FILE_BYTES } from "./recent-chunks.js";
import {
  isWalkFailure,
  isWalkSkip,
  type OpenedFile,
  type Share,
  type ShareEntry,
  type WalkFailure,
  type WalkSkip,
} from "./share.js";

/** Files at most this large are hashed ahead of their turn, up to PREFETCHED_FILES of them. */
const SMALL_FILE_BYTES = 4 * 1024 * 1024;
const PREFETCHED_FILES = 16;
/** Chunk references per CHUNKS frame (~45 KB), well inside any credit window. */
const CHUNK_REFS_PER_FRAME = 1024;
/** Bytes of entries per ENTRIES frame. */
const RESPONSE_FRAME_TARGET = 48 * 1024;

/** Failures of one entry that leave the rest of a manifest sound. */
const ENTRY_FAILURES: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.PERMISSION,
  ErrorCode.NOT_FOUND,
  ErrorCode.FILE_CHANGED,
  ErrorCode.IO,
  // Swapped for a FIFO, a device or a symlink since it was listed.
  ErrorCode.NOT_A_FILE,
  ErrorCode.UNSUPPORTED_TYPE,
  ErrorCode.PATH_ESCAPE,
]);

/** What a manifest is made from; the host's, shared by all connections. */
export interface ManifestSources {
  share: Share;
  chunker: Chunker;
  /** Chunk lists of files already hashed (the file-state cache). */
  index: ChunkIndex | undefined;
  /** Where small files' bytes are kept for the GET_CHUNKS that follows. */
  recent: RecentChunks;
  /** The index as the files read whole see it (see FileStates); undefined with no index. */
  fileStates: FileStates | undefined;
}

/** Sends one frame of the response once its request has credit for it. */
export type SendFrame = <T>(type: number, codec: Codec<T>, value: T) => Promise<void>;

interface FileManifest {
  chunks: ChunkRef[];
  digest: FileDigest;
}

/** An entry walked and, for a small file, being hashed ahead of its turn. */
interface Ahead {
  entry: Entry;
  /** A file's extended attributes (with Feature.XATTRS), read from its descriptor as walked. */
  xattrs: Xattr[] | undefined;
  /** A file's descriptor (or why there is none); a small file's manifest closes it. */
  file: OpenedFile | TeleportError | undefined;
  manifest: Promise<FileManifest> | undefined;
}

/** Files with several names remembered per manifest for HARDLINK entries (~100 bytes each). */
const MAX_LINKED_FILES = 65_536;

export class ManifestStream {
  readonly #sources: ManifestSources;
  readonly #send: SendFrame;
  readonly #entryErrors: boolean;
  /** With Feature.SKIPPED_ENTRIES: what the share does not serve is told, as ENTRY_SKIPPED. */
  readonly #skippedEntries: boolean;
  readonly #signal: AbortSignal;
  /**
   * With Feature.HARD_LINKS: the first path sent of each file with several names, by inode, so
   * its other names go as HARDLINK entries. Bounded: past MAX_LINKED_FILES they go as files.
   */
  readonly #firstNames: Map<string, string> | undefined;
  /** With Feature.XATTRS: files' extended attributes go in their FILE_BEGIN. */
  readonly #xattrs: boolean;
  readonly #exclude: ((wirePath: string, isFolder: boolean) => boolean) | undefined;

  constructor(
    sources: ManifestSources,
    send: SendFrame,
    options: {
      entryErrors: boolean;
      skippedEntries?: boolean;
      hardLinks: boolean;
      xattrs: boolean;
      signal: AbortSignal;
      /** A pull's `--exclude`/`--include` (Share's WalkOptions.exclude). */
      exclude?: ((wirePath: string, isFolder: boolean) => boolean) | undefined;
    },
  ) {
    this.#sources = sources;
    this.#send = send;
    this.#entryErrors = options.entryErrors;
    this.#skippedEntries = options.skippedEntries === true;
    this.#signal = options.signal;
    this.#firstNames = options.hardLinks ? new Map() : undefined;
    this.#xattrs = options.xattrs;
    this.#exclude = options.exclude;
  }

  /** The HARDLINK entry for `found` if a file of the same inode was sent before; else notes it. */
  #hardLink({ entry, inode }: ShareEntry): Entry | undefined {
    if (this.#firstNames === undefined || inode === undefined) return undefined;
    const first = this.#firstNames.get(inode);
    if (first !== undefined) return { ...entry, kind: EntryKind.HARDLINK, linkTarget: first };
    if (this.#firstNames.size < MAX_LINKED_FILES) this.#firstNames.set(inode, entry.path);
    return undefined;
  }

  /**
   * Streams the walk of `path`. Small files are hashed up to PREFETCHED_FILES ahead of the one
   * being sent, concurrently, so a tree of many small files is not one open-read-hash-close round
   * trip after another; large files stream chunk by chunk in walk order.
   */
  async run(path: string): Promise<void> {
    const signal = this.#signal;
    const batch = new EntryBatch((entries) => this.#send(MessageType.ENTRIES, entriesCodec, { entries }));
    const reportSkipped = this.#skippedEntries;
    const exclude = this.#exclude;
    const walk = this.#sources.share.walk(path, { signal, openFiles: true, reportSkipped, exclude });
    const ahead: (Ahead | WalkFailure | WalkSkip)[] = [];
    let walked = false;
    try {
      for (;;) {
        while (!walked && ahead.length < PREFETCHED_FILES) {
          const step = walk.next();
          if (step.done) {
            walked = true;
            break;
          }
          if (isWalkFailure(step.value) || isWalkSkip(step.value)) {
            ahead.push(step.value);
            continue;
          }
          const link = this.#hardLink(step.value);
          if (link !== undefined) {
            closeFile(step.value.file);
            ahead.push({
              entry: link,
              xattrs: undefined,
              file: undefined,
              manifest: undefined,
            });
            continue;
          }
          const { entry, file } = step.value;
          const xattrs = this.#xattrsOf(file); // before a small file's manifest closes it
          const small = entry.kind === EntryKind.FILE && entry.size <= SMALL_FILE_BYTES;
          const manifest = small ? this.#wholeFileManifest(entry, file, signal) : undefined;
          manifest?.catch(() => {}); // awaited in order below; never an unhandled rejection
          ahead.push({ entry, xattrs, file: small ? undefined : file, manifest });
        }
        const next = ahead.shift();
        if (next === undefined) break;
        if (isWalkFailure(next)) {
          await batch.flush();
          await this.#entryFailed(next.path, next.failure);
          continue;
        }
        if (isWalkSkip(next)) {
          // Not in place: the client only reports it, so the batch of entries goes on.
          await this.#send(MessageType.ENTRY_SKIPPED, entrySkippedCodec, {
            path: next.path,
            reason: next.skipped,
          });
          continue;
        }
        const { entry, xattrs, file, manifest } = next;
        if (entry.kind !== EntryKind.FILE) {
          await batch.add(entry);
          continue;
        }
        await batch.flush().catch((err: unknown) => {
          closeFile(file);
          throw err;
        });
        if (manifest === undefined) {
          await this.#sendLargeFile(entry, xattrs, file);
          continue;
        }
        let listed: FileManifest;
        try {
          listed = await manifest;
        } catch (err) {
          await this.#entryFailed(entry.path, err);
          continue;
        }
        await this.#sendFileBegin(entry, xattrs);
        if (listed.chunks.length > 0) {
          await this.#send(MessageType.CHUNKS, chunksCodec, {
            chunks: listed.chunks,
          });
        }
        await this.#send(MessageType.FILE_END, fileEndCodec, listed.digest);
      }
    } finally {
      walk.return(undefined); // closes the walk's open folders when it stops early
      for (const waiting of ahead) if ("file" in waiting) closeFile(waiting.file);
      this.#sources.fileStates?.flush();
    }
    await batch.flush();
  }

  /**
   * The complete chunk list of a small file, open as the walk met it, from the index or by
   * hashing it; closes the file. One up to WHOLE_READ_FILE_BYTES is read whole, and its bytes are
   * kept for the GET_CHUNKS that will likely follow (see RecentChunks).
   */
  async #wholeFileManifest(
    entry: Entry,
    file: OpenedFile | TeleportError | undefined,
    signal: AbortSignal,
  ): Promise<FileManifest> {
    const { fd, identity } = openedOrThrow(file, entry);
    try {
      if (entry.size > WHOLE_READ_FILE_BYTES) return await collectChunks(this.#fileChunks(entry, fd, signal));
      const fileStates = entry.size > UNINDEXED_FILE_BYTES ? this.#sources.fileStates : undefined;
      if (fileStates === undefined) return this.#readWholeFile(entry, fd, identity);
      const found = fileStates.lookup(fd, this.#sources.share.localPath(entry.path), entry.size);
      // Read even when listed: the GET_CHUNKS that follows copies it instead of opening it again.
      if (found !== undefined && isListed(found)) return this.#readWholeFile(entry, fd, identity, found);
      const listed = this.#readWholeFile(entry, fd, identity);
      if (found !== undefined) fileStates.record(fd, found, listed);
      return listed;
    } finally {
      closeQuietly(fd);
    }
  }

  /**
   * Reads a file whole into the recent-chunk ring and lists its chunks there, or keeps them
   * there under the chunk list the index holds for it (`listed`, the file unchanged since).
   */
  #readWholeFile(entry: Entry, fd: number, identity: FileIdentity, listed?: FileManifest): FileManifest {
    const data = this.#sources.recent.reserve(entry.size);
    if (readSync(fd, data, 0, entry.size, 0) !== entry.size) {
      throw new TeleportError(ErrorCode.FILE_CHANGED, `"${entry.path}" shrank while it was being read`);
    }
    const manifest = listed ?? chunkBytes(data, this.#sources.chunker);
    for (const chunk of manifest.chunks) {
      this.#sources.recent.add(chunk.hash, identity, data.subarray(chunk.offset, chunk.offset + chunk.size));
    }
    return manifest;
  }

  /** A large file's manifest, streamed as it is hashed (or read from the index). */
  async #sendLargeFile(
    entry: Entry,
    xattrs: Xattr[] | undefined,
    file: OpenedFile | TeleportError | undefined,
  ): Promise<void> {
    let fd: number;
    try {
      fd = openedOrThrow(file, entry).fd;
    } catch (err) {
      await this.#entryFailed(entry.path, err);
      return;
    }
    platformIo.adviseSequential(fd); // chunks are read in order: more read-ahead from a cold disk
    try {
      await this.#sendFileBegin(entry, xattrs);
      await this.#sendFileChunks(entry, fd);
    } finally {
      closeQuietly(fd);
    }
  }

  /** FILE_BEGIN, with the file's extended attributes when the client asked for them. */
  #sendFileBegin(entry: Entry, xattrs: Xattr[] | undefined): Promise<void> {
    return this.#send(MessageType.FILE_BEGIN, fileBeginCodec, { ...entry, xattrs });
  }

  /**
   * The extended attributes of a file the walk opened, when the client asked for them: read from
   * its descriptor, never by its path, which a local user could redirect through a folder
   * swapped for a symlink since the walk met it. Closes the file if they cannot be read.
   */
  #xattrsOf(file: OpenedFile | TeleportError | undefined): Xattr[] | undefined {
    if (!this.#xattrs || file === undefined || file instanceof TeleportError) return undefined;
    try {
      return platformIo.readXattrs(file.fd);
    } catch (err) {
      closeQuietly(file.fd);
      throw err;
    }
  }

  /**
   * An entry of a manifest that could not be read: an ENTRY_ERROR in its place, and the manifest
   * goes on, when the client understands them and the failure is the entry's own (its
   * permissions, a file removed or changed since it was listed). Anything else fails the request.
   */
  async #entryFailed(path: string, err: unknown): Promise<void> {
    const error = toTeleportError(err);
    if (!this.#entryErrors || !ENTRY_FAILURES.has(error.code)) throw error;
    const failure = { path, code: error.code, message: error.detail };
    await this.#send(MessageType.ENTRY_ERROR, entryErrorCodec, failure);
  }

  /** CHUNKS frames and FILE_END for one file, from the index or by hashing it now. */
  async #sendFileChunks(entry: Entry, fd: number): Promise<void> {
    const listing = this.#fileChunks(entry, fd, this.#signal);
    let step = await listing.next();
    while (!step.done) {
      for (let i = 0; i < step.value.length; i += CHUNK_REFS_PER_FRAME) {
        const chunks = step.value.slice(i, i + CHUNK_REFS_PER_FRAME);
        await this.#send(MessageType.CHUNKS, chunksCodec, { chunks });
      }
      step = await listing.next();
    }
    await this.#send(MessageType.FILE_END, fileEndCodec, step.value);
  }

  /** The chunk list of a file from the index, or by hashing it (see UNINDEXED_FILE_BYTES). */
  #fileChunks(entry: Entry, fd: number, signal: AbortSignal): AsyncGenerator<ChunkRef[], FileDigest> {
    const { share, chunker } = this.#sources;
    const index = entry.size > UNINDEXED_FILE_BYTES ? this.#sources.index : undefined;
    return fileChunks(fd, share.localPath(entry.path), entry.size, chunker, index, signal);
  }
}

/** The file the walk opened for `entry`, or the reason it could not. */
function openedOrThrow(file: OpenedFile | TeleportError | undefined, entry: Entry): OpenedFile {
  if (file instanceof TeleportError) throw file;
  if (file === undefined) throw new TeleportError(ErrorCode.INTERNAL, `"${entry.path}" was not opened`);
  return file;
}

function closeFile(file: OpenedFile | TeleportError | undefined): void {
  if (file !== undefined && !(file instanceof TeleportError)) closeQuietly(file.fd);
}

/** Collects entries into frames of a bounded size. */
export class EntryBatch {
  readonly #send: (entries: Entry[]) => Promise<void>;
  #entries: Entry[] = [];
  #bytes = 0;

  constructor(send: (entries: Entry[]) => Promise<void>) {
    this.#send = send;
  }

  async add(entry: Entry): Promise<void> {
    this.#entries.push(entry);
    this.#bytes += 40 + Buffer.byteLength(entry.path) + Buffer.byteLength(entry.linkTarget);
    if (this.#bytes >= RESPONSE_FRAME_TARGET || this.#entries.length >= MAX_ENTRIES_PER_FRAME)
      await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#entries.length === 0) return;
    const entries = this.#entries;
    this.#entries = [];
    this.#bytes = 0;
    await this.#send(entries);
  }
}
