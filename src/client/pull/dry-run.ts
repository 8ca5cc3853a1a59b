/**
 * `pull --dry-run`: the manifest is walked and checked as a pull walks it (ManifestWalker, the
 * same filters and --delete comparison), and each file is placed as the pull would place its
 * chunks, but nothing is written in DEST, and the index is only read: a file whose every chunk
 * is in its old copy, elsewhere on this machine (the index) or in an earlier file of the pull is
 * reused; any other is copied, and its new chunks are what the network would carry (whole: a
 * changed chunk the pull fetches as a delta against its old copy takes less). Memory: the hashes
 * of the pull's chunks (as hex, ~100 bytes each: ~20 MB for a 1.2 GiB source tree) and one
 * file's chunk list.
 */
import { type Chunker, defaultChunker } from "../../chunking/chunker.js";
import { closeQuietly } from "../../engine/file-io.js";
import { PathFilter } from "../../filter/path-filter.js";
import { Destination } from "../../receive/destination.js";
import { entryAdmission } from "../../receive/entry-admission.js";
import { IndexedChunks } from "../../receive/local-copies.js";
import {
  type FileReceiver,
  ManifestWalker,
  type TreeWriter,
  type WalkedFile,
} from "../../receive/manifest-walker.js";
import { MirrorDeletions } from "../../receive/mirror-deletions.js";
import type { ChunkIndex } from "../../store/chunk-index.js";
import { fileChunks } from "../../store/file-chunks.js";
import type { ChunkRef, FileEnd } from "../../wire/messages.js";
import { normalizeUserPath } from "../../wire/path.js";
import type { TeleportClient } from "../client.js";
import type { PullOptions } from "./summary.js";

/** Paths listed by name in each of a DryRunReport's lists; the rest are counted. */
export const MAX_DRY_RUN_PATHS = 10_000;

export interface DryRunReport {
  dryRun: true;
  /** Files that would take bytes from the network (paths relative to DEST). */
  copy: string[];
  copyCount: number;
  /** Files that would be written from bytes already on this machine. */
  reuse: string[];
  reuseCount: number;
  /** Files already in DEST as the host has them: nothing to do. */
  unchanged: number;
  /** With `delete`: what would be removed, each folder's contents included. */
  delete: string[];
  deleteCount: number;
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
  /** Chunk bytes that would cross the network, each chunk counted once. */
  bytesFromNetwork: number;
  bytesReused: number;
  /** Entries the host could not read: a pull would be partial, and delete nothing. */
  failureCount: number;
}

export async function dryRun(client: TeleportClient, options: PullOptions): Promise<DryRunReport> {
  const run = new DryRun(client, options);
  try {
    return await run.run();
  } finally {
    run.close();
  }
}

/** Nothing is made in DEST. */
const NO_WRITES: TreeWriter = {
  makeDirectory: () => false,
  makeSymlink: () => {},
  link: () => {},
  setFolderMetadata: () => {},
};

class DryRun {
  readonly #client: TeleportClient;
  readonly #options: PullOptions;
  readonly #remote: string;
  readonly #chunker: Chunker = defaultChunker();
  /** Read only: old copies are opened for reading, beneath DEST, never through a symlink. */
  readonly #destination: Destination;
  readonly #mirror: MirrorDeletions | undefined;
  readonly #walker: ManifestWalker;
  readonly #local: IndexedChunks | undefined;
  /** Every chunk a file of the pull would hold once written: later files copy it locally. */
  readonly #inPull = new Set<string>();
  readonly report: DryRunReport = {
    dryRun: true,
    copy: [],
    copyCount: 0,
    reuse: [],
    reuseCount: 0,
    unchanged: 0,
    delete: [],
    deleteCount: 0,
    files: 0,
    directories: 0,
    symlinks: 0,
    bytes: 0,
    bytesFromNetwork: 0,
    bytesReused: 0,
    failureCount: 0,
  };

  constructor(client: TeleportClient, options: PullOptions) {
    this.#client = client;
    this.#options = options;
    this.#remote = normalizeUserPath(options.remotePath ?? "");
    const index = this.#index;
    this.#local = index && new IndexedChunks(index, options.reuse === "dest" ? options.dest : undefined);
    this.#destination = new Destination({
      root: options.dest,
      rootFolder: options.destFolder,
      isKeptDownload: () => true,
      hardLinks: false,
    });
    const filter = options.filters?.length ? PathFilter.compile(options.filters) : undefined;
    const oneFile = client.sharesOneFile && this.#remote === "";
    this.#mirror =
      options.delete === true && !oneFile
        ? new MirrorDeletions({
            dest: options.dest,
            destFolder: options.destFolder,
            protect: (path, folder) => filter?.excludes(path, folder) === true,
          })
        : undefined;
    const report = this.report;
    this.#walker = new ManifestWalker({
      remote: this.#remote,
      dest: options.dest,
      tree: NO_WRITES,
      files: { open: (file) => this.#open(file) },
      tally: {
        directory: () => report.directories++,
        symlink: () => report.symlinks++,
        hardLink: () => {},
        failed: () => report.failureCount++,
        skipped: () => {},
      },
      hardLinks: client.hostSendsHardLinks,
      admit: entryAdmission(this.#remote, filter, this.#mirror),
    });
  }

  get #index(): ChunkIndex | undefined {
    return this.#options.reuse === "none" ? undefined : this.#options.index;
  }

  async run(): Promise<DryRunReport> {
    const manifest = this.#client.manifest(this.#remote, this.#options.signal, this.#options.filters);
    await this.#walker.walk(manifest, () => this.#options.signal?.throwIfAborted());
    this.#walker.finish();
    if (this.#mirror !== undefined && this.report.failureCount === 0) {
      const removals = this.#mirror.remove(true);
      this.report.delete = removals.removed.slice(0, MAX_DRY_RUN_PATHS);
      this.report.deleteCount = removals.removedCount;
    }
    return this.report;
  }

  close(): void {
    this.#destination.close();
    this.#mirror?.close();
  }

  #open(file: WalkedFile): FileReceiver {
    const chunks: ChunkRef[] = [];
    return {
      onHole: () => {},
      onChunks: () => {},
      onChunk: (chunk) => {
        chunks.push(chunk);
        return undefined;
      },
      onEnd: (end) => this.#place(file, chunks, end),
    };
  }

  /** Where the file's chunks would come from, as the pull's ChunkPlanner would find them. */
  async #place(file: WalkedFile, chunks: readonly ChunkRef[], end: FileEnd): Promise<void> {
    // `--reuse none` fetches every byte: no old copy, nothing copied locally.
    const reuses = this.#options.reuse !== "none";
    const old = reuses ? await this.#oldChunks(file, end) : undefined;
    const path = file.finalPath.slice(this.#options.dest.length + 1);
    const report = this.report;
    report.files++;
    report.bytes += file.entry.size;
    let network = 0;
    for (const chunk of chunks) {
      const hash = chunk.hash.toString("hex");
      const local =
        old?.hashes.has(hash) || this.#inPull.has(hash) || this.#local?.find(chunk.hash, undefined);
      this.#inPull.add(hash);
      if (!local) network += chunk.size;
    }
    if (old?.unchanged === true) {
      report.unchanged++;
      return this.#walker.fileDone(file);
    }
    report.bytesFromNetwork += network;
    report.bytesReused += file.entry.size - network;
    if (network > 0) listed(report.copy, path, report.copyCount++);
    else listed(report.reuse, path, report.reuseCount++);
    this.#walker.fileDone(file);
  }

  /** The chunks of the old copy in DEST, from the index where it knows it (never recorded there). */
  async #oldChunks(
    file: WalkedFile,
    end: FileEnd,
  ): Promise<{ unchanged: boolean; hashes: Set<string> } | undefined> {
    const old = this.#destination.openOldCopy(file.finalPath);
    if (old === undefined) return undefined;
    try {
      const size = Number(old.stats.size);
      const known = this.#index?.lookupFile(file.finalPath, old.stats, this.#chunker.id);
      const index = known?.fileHash ? this.#index : undefined;
      const hashes = new Set<string>();
      const listing = fileChunks(old.fd, file.finalPath, size, this.#chunker, index, this.#options.signal);
      let step = await listing.next();
      for (; !step.done; step = await listing.next())
        for (const chunk of step.value) hashes.add(chunk.hash.toString("hex"));
      const unchanged = size === end.size && step.value.fileHash.equals(end.fileHash);
      return { unchanged, hashes };
    } finally {
      closeQuietly(old.fd);
    }
  }
}

function listed(paths: string[], path: string, count: number): void {
  if (count < MAX_DRY_RUN_PATHS) paths.push(path);
}
