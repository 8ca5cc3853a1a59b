/**
 * How fast a mount's chunk store reads and verifies the chunks it holds, alone (no FUSE, no
 * network): every chunk its table holds, in the order they were written, read by hash through
 * ChunkStore.read, 3 passes.
 * Usage: node dist/bench/chunk-store-read.js STORE_FOLDER
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { ChunkStore } from "../src/mount/chunk-store.js";
import type { ChunkRef } from "../src/wire/messages.js";

const [folder = ""] = process.argv.slice(2);
const table = new Database(join(folder, "chunks.db"), { readonly: true });
const rows = table
  .prepare("SELECT hash, size FROM chunks WHERE owner IS NULL ORDER BY pack, position")
  .all() as { hash: Buffer; size: number }[];
table.close();
const refs: ChunkRef[] = rows.map(({ hash, size }) => ({ offset: 0, size, hash }));
const store = ChunkStore.open(folder, Number.MAX_SAFE_INTEGER);
for (let pass = 0; pass < 3; pass++) {
  const started = performance.now();
  let bytes = 0;
  for (const ref of refs) bytes += store.read(ref)?.length ?? 0;
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ chunks: refs.length, bytes, readMBps: Math.round(bytes / 1e6 / seconds) }));
}
await store.close();
