/**
 * Walking the manifest as it streams in: every event is checked for its place (a file's chunks
 * inside that file, every path inside the pull and inside a folder the host announced), folders
 * are created and get their metadata once everything inside them is done, symlinks are made,
 * hard links wait for their file. Files are handed to a FileOpener and their chunks to what it
 * returns, after the one check of chunk order here (ChunkSequence), which a replayed chunk list
 * passes too.
 */
import { join } from "node:path";
import { ChunkListHash } from "../chunking/manifest.js";
import { ErrorCode, isErrorCode, TeleportError, toTeleportError } from "../errors.js";
import {
  type ChunkRef,
  type Entry,
  type EntryError,
  EntryKind,
  type EntrySkipped,
  type FileBegin,
  type FileEnd,
  MAX_CHUNK_SIZE,
} from "../wire/messages.js";
import { checkLinkTarget, isWithin, splitWirePath } from "../wire/path.js";
import type { FolderListing } from "./destination.js";
import type { ManifestEvent } from "./manifest-event.js";

/** A folder of the pull, from its announcement until it gets its metadata. */
export interface Folder extends FolderListing {
  readonly wirePath: string;
  readonly localPath: string;
  /** undefined for the destination root, which keeps its own metadata. */
  readonly entry: Entry | undefined;
  readonly parent: Folder | undefined;
  /** Files and folders inside not yet finished. */
  pending: number;
  /** True once the manifest has moved past this folder's subtree. */
  listed: boolean;
  /** True once its mode and mtime are set. */
  finished: boolean;
}

/** A file the manifest announced, where it goes, and its other names waiting for it. */
export interface WalkedFile {
  readonly entry: FileBegin;
  readonly finalPath: string;
  readonly folder: Folder;
  /** Hard links to make to this file once it is complete. */
  readonly otherNames: OtherName[];
}

/** Another name of a file (a HARDLINK entry), waiting for the file to be complete. */
interface OtherName {
  wirePath: string;
  finalPath: string;
  folder: Folder;
}

/** What receives a file's chunks, in order, each already checked. */
export interface ChunkReceiver {
  /** A hole of a sparse file, from `start` to `end`. */
  onHole(start: number, end: number): void;
  /** A chunk; a promise when the next one must wait (the window is full). */
  onChunk(chunk: ChunkRef): Promise<void> | undefined;
}

export interface FileReceiver extends ChunkReceiver {
  /** A CHUNKS frame, checked, before its chunks arrive one by one. */
  onChunks(chunks: readonly ChunkRef[]): void;
  /** The file's end, checked against its chunk list; a promise when the walk must wait. */
  onEnd(end: FileEnd): Promise<void> | undefined;
}

/** Starts the transfer of a file the manifest announced (a promise when it must wait). */
export interface FileOpener {
  open(file: WalkedFile): FileReceiver | Promise<FileReceiver>;
}

/** What the walk makes in the destination folder. */
export interface TreeWriter {
  /** True if the folder was created (it holds nothing yet), false if it existed. */
  makeDirectory(localPath: string): boolean;
  /** The symlink `localPath` -> `target`, its own mtime `mtimeMs`. */
  makeSymlink(target: string, localPath: string, mtimeMs: number): void;
  link(existingPath: string, localPath: string): void;
  setFolderMetadata(localPath: string, entry: Entry): void;
}

/** What the walk counts. */
export interface WalkTally {
  directory(): void;
  symlink(): void;
  hardLink(): void;
  failed(path: string, code: ErrorCode, message: string): void;
  skipped(path: string, reason: string): void;
}

export interface WalkerOptions {
  /** The pulled file or folder, normalized ("" for the whole share). */
  remote: string;
  /** The destination folder, absolute. */
  dest: string;
  tree: TreeWriter;
  files: FileOpener;
  tally: WalkTally;
  /** Whether the host may send HARDLINK entries (Feature.HARD_LINKS was negotiated). */
  hardLinks: boolean;
  /** Told each entry's wire path and whether it is a folder, in order; may refuse it (EntryFilter). */
  admit?: ((wirePath: string, isFolder: boolean) => void) | undefined;
}

/**
 * The one check of a file's chunk list: chunks in order, none empty or over MAX_CHUNK_SIZE,
 * inside the file, and, at FILE_END, covering it (holes between them) with the count and file
 * hash the host announced.
 */
export class ChunkSequence {
  readonly #wirePath: string;
  readonly #size: number;
  readonly #listHash = new ChunkListHash();
  /** Next offset the list must describe: chunks tile the file but for holes, between them. */
  #described = 0;
  #count = 0;

  constructor(wirePath: string, size: number) {
    this.#wirePath = wirePath;
    this.#size = size;
  }

  get described(): number {
    return this.#described;
  }

  /** Checks a frame of chunks, following what came before; throws a PROTOCOL error if it does not. */
  accept(chunks: readonly ChunkRef[]): void {
    for (const chunk of chunks) {
      if (chunk.offset < this.#described || chunk.size === 0 || chunk.size > MAX_CHUNK_SIZE) {
        throw protocolError(
          `chunk at ${chunk.offset} of "${this.#wirePath}" does not follow the previous one`,
        );
      }
      if (chunk.offset + chunk.size > this.#size)
        throw protocolError(`chunks of "${this.#wirePath}" run past its size`);
      if (chunk.offset > this.#described)
        this.#listHash.addHole(this.#described, chunk.offset - this.#described);
      this.#described = chunk.offset + chunk.size;
      this.#count++;
      this.#listHash.add(chunk.hash);
    }
  }

  /**
   * Checks the list against FILE_END; returns where the file's trailing hole starts (its size
   * when it has none).
   */
  end(end: FileEnd): number {
    const holeStart = this.#described;
    if (holeStart < end.size && end.size === this.#size) {
      this.#listHash.addHole(holeStart, end.size - holeStart);
      this.#described = end.size;
    }
    if (end.size !== this.#size || this.#described !== this.#size || end.chunkCount !== this.#count) {
      throw protocolError(`chunks of "${this.#wirePath}" do not cover the file`);
    }
    if (!this.#listHash.digest().equals(end.fileHash)) {
      throw protocolError(`the file hash of "${this.#wirePath}" does not match its chunk list`);
    }
    return holeStart;
  }
}

/**
 * Hands checked chunks to `receiver` from `chunks[first]` on, with the holes between them; `at`:
 * where the chunk before ended. A promise only once a chunk must wait: most files of a tree never
 * do, and a promise per file is garbage the main thread collects.
 */
export function deliver(
  receiver: ChunkReceiver,
  chunks: readonly ChunkRef[],
  at: number,
  first = 0,
): Promise<void> | undefined {
  for (let i = first; i < chunks.length; i++) {
    const chunk = chunks[i];
    if (chunk === undefined) break;
    if (chunk.offset > at) receiver.onHole(at, chunk.offset);
    const end = chunk.offset + chunk.size;
    const waiting = receiver.onChunk(chunk);
    if (waiting !== undefined) return waiting.then(() => deliver(receiver, chunks, end, i + 1));
    at = end;
  }
  return undefined;
}

/**
 * A file's manifest asked for again (its old copy turned out to differ): it must describe the
 * same version, with the same file hash, and passes the same checks as the first time.
 */
export async function replayChunks(
  events: AsyncIterable<ManifestEvent>,
  entry: Entry,
  expected: FileEnd,
  receiver: ChunkReceiver,
): Promise<void> {
  const changed = () =>
    new TeleportError(ErrorCode.FILE_CHANGED, `"${entry.path}" changed on the host during the pull`);
  const sequence = new ChunkSequence(entry.path, entry.size);
  let ended = false;
  for await (const event of events) {
    if (event.kind === "file-begin" && !ended) {
      if (event.entry.size !== entry.size || event.entry.mtimeMs !== entry.mtimeMs) throw changed();
    } else if (event.kind === "chunks" && !ended) {
      const from = sequence.described;
      sequence.accept(event.chunks);
      await deliver(receiver, event.chunks, from);
    } else if (event.kind === "file-end" && !ended) {
      if (!event.digest.fileHash.equals(expected.fileHash)) throw changed();
      const holeStart = sequence.end(event.digest);
      if (holeStart < entry.size) receiver.onHole(holeStart, entry.size);
      ended = true;
    } else {
      throw protocolError(`unexpected entries in the manifest of "${entry.path}"`);
    }
  }
  if (!ended) throw changed();
}

/** The file being described, between its FILE_BEGIN and FILE_END. */
interface CurrentFile {
  readonly file: WalkedFile;
  readonly receiver: FileReceiver;
  readonly sequence: ChunkSequence;
}

export class ManifestWalker {
  readonly #remote: string;
  readonly #dest: string;
  /** Path segments of the pulled item's parent: what a wire path loses under the destination. */
  readonly #skip: number;
  readonly #tree: TreeWriter;
  readonly #files: FileOpener;
  readonly #tally: WalkTally;
  readonly #hardLinks: boolean;
  readonly #admit: ((wirePath: string, isFolder: boolean) => void) | undefined;
  readonly #folders: Folder[] = [];
  /** Files begun and not complete, by wire path, for hard links to them. */
  readonly #openByPath = new Map<string, WalkedFile>();
  #current: CurrentFile | undefined;
  /** Whether the requested file or folder itself has been announced (it must come first, once). */
  #topSeen = false;

  constructor(options: WalkerOptions) {
    this.#remote = options.remote;
    this.#dest = options.dest;
    this.#skip = splitWirePath(parentWirePath(options.remote)).length;
    this.#tree = options.tree;
    this.#files = options.files;
    this.#tally = options.tally;
    this.#hardLinks = options.hardLinks;
    this.#admit = options.admit;
    this.#folders.push({
      wirePath: parentWirePath(options.remote),
      localPath: options.dest,
      entry: undefined,
      parent: undefined,
      pending: 0,
      listed: false,
      finished: false,
      names: undefined,
    });
  }

  /** Walks the whole manifest; `beforeEach` may throw to stop it. */
  async walk(events: AsyncIterable<ManifestEvent>, beforeEach: () => void): Promise<void> {
    for await (const event of events) {
      beforeEach();
      // Each step returns a promise only when it must wait: most files of a tree never do.
      let waiting: Promise<void> | undefined;
      switch (event.kind) {
        case "entries":
          for (const entry of event.entries) this.#onEntry(entry);
          break;
        case "file-begin":
          waiting = this.#onFileBegin(event.entry);
          break;
        case "chunks":
          waiting = this.#onChunks(event.chunks);
          break;
        case "file-end":
          waiting = this.#onFileEnd(event.digest);
          break;
        case "entry-error":
          this.#onEntryError(event.failure);
          break;
        case "entry-skipped":
          this.#onEntrySkipped(event.skipped);
          break;
      }
      if (waiting !== undefined) await waiting;
    }
    if (this.#current !== undefined) throw protocolError("manifest ended inside a file");
  }

  /** Closes every folder, once all files are done: the innermost get their metadata first. */
  finish(): void {
    for (const folder of this.#folders.splice(0).reverse()) this.#leave(folder);
  }

  /** The file is complete under its name: its other names are linked to it. */
  fileDone(file: WalkedFile): void {
    if (this.#openByPath.get(file.entry.path) === file) this.#openByPath.delete(file.entry.path);
    for (const name of file.otherNames) this.#linkName(file.finalPath, name);
    this.#childDone(file.folder);
  }

  #onEntry(entry: Entry): void {
    const folder = this.#enter(entry.path);
    this.#admit?.(entry.path, entry.kind === EntryKind.DIRECTORY);
    if (entry.kind === EntryKind.DIRECTORY) {
      // The share root lands on the destination folder itself; other folders are created in it.
      const isShareRoot = entry.path === "";
      const localPath = isShareRoot ? this.#dest : this.#localPath(entry.path);
      const created = !isShareRoot && this.#tree.makeDirectory(localPath);
      if (!isShareRoot) folder.pending++;
      this.#folders.push({
        wirePath: entry.path,
        localPath,
        entry,
        parent: isShareRoot ? undefined : folder,
        pending: 0,
        listed: false,
        finished: false,
        names: created ? new Set() : undefined,
      });
      this.#tally.directory();
    } else if (entry.kind === EntryKind.SYMLINK) {
      checkLinkTarget(splitWirePath(entry.path).slice(this.#skip).join("/"), entry.linkTarget);
      this.#tree.makeSymlink(entry.linkTarget, this.#localPath(entry.path), entry.mtimeMs);
      this.#tally.symlink();
    } else if (entry.kind === EntryKind.HARDLINK) {
      this.#onHardLink(entry, folder);
    } else {
      throw protocolError(`file "${entry.path}" announced without its chunks`);
    }
  }

  #onFileBegin(entry: FileBegin): Promise<void> | undefined {
    if (entry.kind !== EntryKind.FILE) throw protocolError(`"${entry.path}" is not a file`);
    if (this.#current !== undefined) throw protocolError("file begins inside another file");
    const folder = this.#enter(entry.path);
    if (!isWithin(entry.path, this.#remote))
      throw protocolError(`host sent "${entry.path}", outside "${this.#remote}"`);
    if (entry.path === "") throw protocolError("the share root must be a folder");
    this.#admit?.(entry.path, false);
    // #enter checked the path and found its folder: the file's name goes under the folder's path.
    const finalPath = childPath(folder.localPath, entry.path.slice(entry.path.lastIndexOf("/") + 1));
    const file: WalkedFile = { entry, finalPath, folder, otherNames: [] };
    folder.pending++;
    // Only a file a hard link may name is looked up by its wire path.
    if (this.#hardLinks) this.#openByPath.set(entry.path, file);
    const receiver = this.#files.open(file);
    if (!(receiver instanceof Promise)) {
      this.#begin(file, receiver);
      return undefined;
    }
    return receiver.then((opened) => this.#begin(file, opened));
  }

  #begin(file: WalkedFile, receiver: FileReceiver): void {
    this.#current = { file, receiver, sequence: new ChunkSequence(file.entry.path, file.entry.size) };
  }

  #onChunks(chunks: ChunkRef[]): Promise<void> | undefined {
    const current = this.#current;
    if (current === undefined) throw protocolError("chunks outside a file");
    const from = current.sequence.described;
    current.sequence.accept(chunks);
    current.receiver.onChunks(chunks);
    return deliver(current.receiver, chunks, from);
  }

  #onFileEnd(end: FileEnd): Promise<void> | undefined {
    const current = this.#current;
    if (current === undefined) throw protocolError("file end outside a file");
    const holeStart = current.sequence.end(end);
    this.#current = undefined;
    if (holeStart < end.size) current.receiver.onHole(holeStart, end.size);
    return current.receiver.onEnd(end);
  }

  /** An entry the host could not read: reported in the summary, and the pull goes on. */
  #onEntryError({ path, code, message }: EntryError): void {
    if (this.#current !== undefined) throw protocolError("an entry error inside a file");
    splitWirePath(path); // checked like any name from the network, though only reported
    if (!isWithin(path, this.#remote)) throw protocolError(`an entry error for "${path}", outside the pull`);
    this.#tally.failed(path, isErrorCode(code) ? code : ErrorCode.IO, message);
  }

  /** An entry the host does not serve (a FIFO, a symlink leading outside): reported, the pull goes on. */
  #onEntrySkipped({ path, reason }: EntrySkipped): void {
    if (this.#current !== undefined) throw protocolError("a skipped entry inside a file");
    splitWirePath(path); // checked like any name from the network, though only reported
    if (!isWithin(path, this.#remote)) throw protocolError(`a skipped entry "${path}", outside the pull`);
    this.#admit?.(path, false); // there at the source: --delete keeps its name
    this.#tally.skipped(path, reason);
  }

  /**
   * A HARDLINK entry: another name of a file of this pull. Linked at once if the file is
   * complete, else when it is.
   */
  #onHardLink(entry: Entry, folder: Folder): void {
    if (!this.#hardLinks)
      throw protocolError(`hard link "${entry.path}" sent without the hard-links feature`);
    const target = entry.linkTarget;
    splitWirePath(target);
    if (!isWithin(target, this.#remote) || target === entry.path)
      throw protocolError(`hard link "${entry.path}" to "${target}", outside the pull`);
    folder.pending++;
    const name = { wirePath: entry.path, finalPath: this.#localPath(entry.path), folder };
    const open = this.#openByPath.get(target);
    if (open !== undefined) open.otherNames.push(name);
    else this.#linkName(this.#localPath(target), name);
  }

  /**
   * Makes `name` a hard link to the complete file at `finalPath`, replacing what was there; a
   * file system without hard links gets a copy. A target that is missing (it failed to pull) is
   * reported as a failure of this name, and the pull goes on.
   */
  #linkName(finalPath: string, name: OtherName): void {
    try {
      this.#tree.link(finalPath, name.finalPath);
      this.#tally.hardLink();
    } catch (err) {
      const error = toTeleportError(err, `linking "${name.wirePath}"`);
      this.#tally.failed(name.wirePath, error.code, error.detail);
    }
    this.#childDone(name.folder);
  }

  /** Maps a wire path inside the pulled subtree to its path under the destination. */
  #localPath(wirePath: string): string {
    if (!isWithin(wirePath, this.#remote))
      throw protocolError(`host sent "${wirePath}", outside "${this.#remote}"`);
    // Only a folder may land on the destination itself (the share root when pulling everything).
    if (wirePath === "") throw protocolError("the share root must be a folder");
    return join(this.#dest, ...splitWirePath(wirePath).slice(this.#skip));
  }

  /** The folder an entry lives in; closes every folder the walk has left behind. */
  #enter(wirePath: string): Folder {
    splitWirePath(wirePath); // refuses unsafe names with their own error codes first
    if (wirePath === this.#remote) {
      if (this.#topSeen) throw protocolError(`host sent "${wirePath}" twice`);
      this.#topSeen = true;
    }
    const parent = parentWirePath(wirePath);
    for (;;) {
      const top = this.#folders.at(-1);
      if (top === undefined) throw protocolError(`"${wirePath}" is not inside a folder the host announced`);
      if (top.wirePath === parent && (top.entry !== undefined || wirePath === this.#remote)) return top;
      if (top.entry === undefined)
        throw protocolError(`"${wirePath}" is not inside a folder the host announced`);
      this.#folders.pop();
      this.#leave(top);
    }
  }

  #leave(folder: Folder): void {
    folder.listed = true;
    this.#finishIfDone(folder);
  }

  #childDone(folder: Folder): void {
    folder.pending--;
    this.#finishIfDone(folder);
  }

  /** A folder gets its mode and mtime last, since creating entries inside it changes its mtime. */
  #finishIfDone(folder: Folder): void {
    const { entry } = folder;
    if (!folder.listed || folder.pending > 0 || entry === undefined || folder.finished) return;
    folder.finished = true;
    this.#tree.setFolderMetadata(folder.localPath, entry);
    if (folder.parent !== undefined) this.#childDone(folder.parent);
  }
}

/** The path of `name` in the folder at `folderPath` (absolute, normalized, as `join` gives it). */
function childPath(folderPath: string, name: string): string {
  return folderPath.endsWith("/") ? folderPath + name : `${folderPath}/${name}`;
}

function parentWirePath(wirePath: string): string {
  const slash = wirePath.lastIndexOf("/");
  return slash < 0 ? "" : wirePath.slice(0, slash);
}

export function protocolError(message: string): TeleportError {
  return new TeleportError(ErrorCode.PROTOCOL, message);
}
