/**
 * How soon a large file's first chunk arrives while the host is still cutting and hashing the
 * rest (manifests stream): from asking for the manifest to the first chunk fetched and verified,
 * and to the file's FILE_END, sent once the host has hashed all of it. The host must be cold (a
 * fresh TELEPORT_HOME), or FILE_END comes from its index at once.
 *
 *   node dist/bench/drivers/first-chunk-probe.js LINK REMOTE_PATH
 *
 * Prints one JSON object: { firstChunkMs, fileEndMs, chunkCount }.
 */
import { TeleportClient } from "../../src/client/client.js";

const [link, remotePath] = process.argv.slice(2);
if (link === undefined || remotePath === undefined)
  throw new Error("usage: first-chunk-probe LINK REMOTE_PATH");

const client = await TeleportClient.connect(link);
const started = performance.now();
let firstChunkMs = Number.NaN;
let fileEndMs = Number.NaN;
let chunkCount = 0;
let firstFetch: Promise<void> | undefined;
for await (const event of client.manifest(remotePath)) {
  if (event.kind === "chunks" && firstFetch === undefined) {
    const [first] = event.chunks;
    if (first === undefined) continue;
    firstFetch = client.fetchChunks([{ ...first, path: remotePath }], (_request, data) => {
      client.pool.release(data);
      firstChunkMs = performance.now() - started;
    });
  }
  if (event.kind === "file-end") {
    fileEndMs = performance.now() - started;
    chunkCount = event.digest.chunkCount;
  }
}
await firstFetch;
await client.close();
process.stdout.write(`${JSON.stringify({ firstChunkMs, fileEndMs, chunkCount })}\n`);
