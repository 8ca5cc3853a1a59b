/**
 * Chunking a file as the host does when it builds a manifest: chunkFile with the default
 * content-defined chunker over a 64 MiB file already in the page cache. Each operation reads the file and
 * BLAKE3-hashes every chunk, so the figure against "blake3 1 MiB" shows what the reads cost.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { defaultChunker } from "../../src/chunking/chunker.js";
import { chunkFile } from "../../src/chunking/manifest.js";
import { registerCleanup } from "../lib/processes.js";
import { MIB, type TaskGroup } from "./task.js";

export const CHUNK_FILE_64MIB = "chunkFile 64 MiB";

const FILE_BYTES = 64 * MIB;

export async function prepareChunkingTasks(scratchDir: string): Promise<TaskGroup> {
  const dir = mkdtempSync(join(scratchDir, "micro-chunking-"));
  const removeDir = registerCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "payload.bin");
  // Written just now, so it is in the page cache: the task measures reads from memory, not disk.
  await writeFile(path, randomBytes(FILE_BYTES));
  const handle = await open(path, "r");
  const chunker = defaultChunker();

  const chunkWholeFile = async (): Promise<number> => {
    let chunks = 0;
    for await (const batch of chunkFile(handle.fd, FILE_BYTES, chunker)) chunks += batch.length;
    return chunks;
  };
  const chunks = await chunkWholeFile();
  if (chunks < FILE_BYTES / chunker.maxChunkSize) throw new Error(`chunkFile yielded only ${chunks} chunks`);

  return {
    tasks: [
      {
        name: CHUNK_FILE_64MIB,
        operation: `chunkFile of a 64 MiB cached file, ${chunker.id}`,
        role: "subject",
        bytesPerOp: FILE_BYTES,
        async: true,
        run: chunkWholeFile,
      },
    ],
    close: async () => {
      await handle.close();
      await removeDir.run();
    },
  };
}
