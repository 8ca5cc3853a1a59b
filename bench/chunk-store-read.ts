/**
 * How fast a mount's chunk store reads and verifies the chunks it holds, alone (no FUSE, no
 * network): every chunk file of the store folder, read by hash through ChunkStore.read, 3 passes.
 * Usage: node dist/bench/chunk-store-read.js STORE_FOLDER
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { ChunkStore } from "../src/mount/chunk-store.js";
import type { ChunkRef } from "../src/wire/messages.js";

const [folder = ""] = process.argv.slice(2);
const refs: ChunkRef[] = [];
for (const fan of readdirSync(folder))
  if (/^[0-9a-f]{2}$/.test(fan))
    for (const name of readdirSync(join(folder, fan)))
      if (/^[0-9a-f]{64}$/.test(name))
        refs.push({
          offset: 0,
          size: statSync(join(folder, fan, name)).size,
          hash: Buffer.from(name, "hex"),
        });
const store = ChunkStore.open(folder, Number.MAX_SAFE_INTEGER);
for (let pass = 0; pass < 3; pass++) {
  const started = performance.now();
  let bytes = 0;
  for (const ref of refs) bytes += store.read(ref)?.length ?? 0;
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ chunks: refs.length, bytes, readMBps: Math.round(bytes / 1e6 / seconds) }));
}
await store.close();
