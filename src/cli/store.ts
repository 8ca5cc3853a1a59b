/**
 * `teleport index <dir>` and `teleport store stats|gc`: seeding the chunk index with files this
 * machine already has, and looking after it.
 */
import { lstatSync } from "node:fs";
import { constants, lstat, open, opendir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { defaultChunker } from "../chunking/chunker.js";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { ChunkIndex, identityOf, inodeOf } from "../store/chunk-index.js";
import { fileChunks } from "../store/file-chunks.js";
import { teleportHome } from "./home.js";
import { plural } from "./plural.js";
import { formatBytes } from "./progress.js";
import { terminalLine } from "./terminal-text.js";

export interface IndexSummary {
  files: number;
  bytes: number;
  /** Files read and hashed now; the others were indexed and unchanged. */
  hashedFiles: number;
  hashedBytes: number;
  /** Files that could not be read (named on stderr). */
  failedFiles: number;
  seconds: number;
}

/** Indexes every regular file under `dir` (symlinks are not followed), one at a time. */
export async function indexCommand(dir: string, flags: { json?: boolean }): Promise<void> {
  const root = resolve(dir);
  const stats = await lstat(root).catch((err: unknown) => {
    throw toTeleportError(err, root);
  });
  if (!stats.isDirectory() && !stats.isFile()) {
    throw new TeleportError(ErrorCode.NOT_A_FILE, `${root} is neither a folder nor a file`);
  }
  const index = ChunkIndex.open(teleportHome());
  const chunker = defaultChunker();
  const started = performance.now();
  const summary: IndexSummary = {
    files: 0,
    bytes: 0,
    hashedFiles: 0,
    hashedBytes: 0,
    failedFiles: 0,
    seconds: 0,
  };
  try {
    for await (const path of regularFiles(root)) {
      try {
        const before = await lstat(path, { bigint: true });
        const known = index.lookupFile(path, before, chunker.id) !== undefined;
        const size = Number(before.size);
        if (!known) {
          const handle = await open(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
          try {
            const listing = fileChunks(handle.fd, path, size, chunker, index);
            while (!(await listing.next()).done) {}
          } finally {
            await handle.close();
          }
          summary.hashedFiles++;
          summary.hashedBytes += size;
        }
        summary.files++;
        summary.bytes += size;
      } catch (err) {
        summary.failedFiles++;
        process.stderr.write(terminalLine(`teleport: skipped ${path}: ${toTeleportError(err).message}`));
      }
    }
  } finally {
    index.close();
  }
  summary.seconds = (performance.now() - started) / 1000;
  process.stdout.write(
    flags.json
      ? `${JSON.stringify(summary)}\n`
      : `indexed ${plural(summary.files, "file")} (${formatBytes(summary.bytes)}), ` +
          `${summary.hashedFiles} read and hashed (${formatBytes(summary.hashedBytes)}) in ` +
          `${summary.seconds.toFixed(2)} s${summary.failedFiles > 0 ? `, ${summary.failedFiles} skipped` : ""}\n`,
  );
  if (summary.failedFiles > 0) process.exitCode = 1;
}

/** Regular files under `root` (or `root` itself), depth first, one folder handle open per level. */
async function* regularFiles(root: string): AsyncGenerator<string> {
  if ((await lstat(root)).isFile()) {
    yield root;
    return;
  }
  const folder = await opendir(root);
  for await (const entry of folder) {
    const path = join(root, entry.name);
    if (entry.isDirectory()) yield* regularFiles(path);
    else if (entry.isFile()) yield path;
  }
}

export function storeStatsCommand(flags: { json?: boolean }): void {
  const index = ChunkIndex.open(teleportHome());
  try {
    const stats = index.stats();
    process.stdout.write(
      flags.json
        ? `${JSON.stringify({ path: index.path, ...stats })}\n`
        : [
            `index: ${index.path} (${formatBytes(stats.databaseBytes)})`,
            `files: ${stats.files} complete, ${stats.downloads} downloads in progress`,
            `chunks: ${stats.chunks}, ${formatBytes(stats.uniqueBytes)} distinct of ${formatBytes(stats.bytes)} in files`,
            "",
          ].join("\n"),
    );
  } finally {
    index.close();
  }
}

/** Forgets files that changed, moved or vanished since they were indexed, and compacts the index. */
export function storeGcCommand(flags: { json?: boolean }): void {
  const index = ChunkIndex.open(teleportHome());
  try {
    const removed = index.gc((path) => {
      try {
        const stats = lstatSync(path, { bigint: true });
        return stats.isFile() ? { identity: identityOf(stats), inode: inodeOf(stats) } : undefined;
      } catch {
        return undefined;
      }
    });
    const after = index.stats();
    process.stdout.write(
      flags.json
        ? `${JSON.stringify({ removedFiles: removed.files, removedChunks: removed.chunks, ...after })}\n`
        : `forgot ${plural(removed.files, "file")} (${plural(removed.chunks, "chunk")}) no longer as indexed; ` +
            `${plural(after.files + after.downloads, "file")} still indexed (${formatBytes(after.databaseBytes)})\n`,
    );
  } finally {
    index.close();
  }
}
