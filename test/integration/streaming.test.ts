/**
 * Manifests stream: a client fetches and verifies the first chunks of a large file while the
 * host is still cutting and hashing the rest. 512 MiB of data (not holes, which the host skips)
 * take the host most of a second; the first chunk must arrive long before its FILE_END.
 */
import assert from "node:assert/strict";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { defaultChunker } from "../../src/chunking/chunker.js";
import { TeleportClient } from "../../src/client/client.js";
import { pull } from "../../src/client/pull.js";
import { onCleanup } from "../helpers/context.js";
import { hostInProcess, makeShare } from "../helpers/share.js";
import { MiB, pseudoRandomBytes } from "../helpers/tree.js";

// That the first chunk arrives before the host has finished hashing is a timing claim, measured by
// the benchmark suite; here, the order of events: chunks are listed in batches as they are cut,
// and one of them can be fetched and verified while the file's listing goes on.
test("a large file's chunks can be fetched while its manifest is still being listed", async (t) => {
  const { base, share } = await makeShare(t, "streaming");
  const file = await open(join(share, "huge.img"), "w");
  const block = pseudoRandomBytes(16 * MiB, "streaming");
  for (let i = 0; i < 4; i++) await file.write(block, 0, block.length, i * block.length);
  await file.write(Buffer.from("first bytes"), 0, 11, 0);
  await file.close();

  const host = await hostInProcess(t, { base, share });
  const client = await TeleportClient.connect(host.url);
  onCleanup(t, () => client.close());

  const timeline: string[] = [];
  for await (const event of client.manifest("huge.img")) {
    if (event.kind === "chunks") {
      if (timeline.length === 0) {
        const [first] = event.chunks;
        assert.ok(first !== undefined);
        // The listing waits while the chunk is fetched: the host serves it mid-listing.
        await client.fetchChunks([{ ...first, path: "huge.img" }], (_request, data) => {
          assert.equal(data.subarray(0, 11).toString(), "first bytes");
          client.pool.release(data);
          timeline.push("first chunk verified");
        });
      } else if (timeline.at(-1) !== "more chunks") timeline.push("more chunks");
    }
    if (event.kind === "file-end") {
      timeline.push("file end");
      assert.equal(event.digest.size, 64 * MiB);
      // Content-defined chunks average 64 KiB: hundreds of them, listed as they are cut.
      assert.ok(event.digest.chunkCount > (64 * MiB) / defaultChunker().maxChunkSize);
    }
  }
  assert.deepEqual(timeline, ["first chunk verified", "more chunks", "file end"]);
});

test("a pull's streams hold no more chunk memory than the pool's bound, whatever the file size", async (t) => {
  const { base, share } = await makeShare(t, "window");
  const file = await open(join(share, "big.bin"), "w");
  for (let i = 0; i < 48; i++) await file.write(pseudoRandomBytes(MiB, `window-${i}`));
  await file.close();
  const host = await hostInProcess(t, { base, share });
  const client = await TeleportClient.connect(host.url);
  onCleanup(t, () => client.close());

  const summary = await pull(client, { dest: join(base, "dest"), streams: 4 });
  assert.equal(summary.bytes, 48 * 1024 * 1024);
  const pool = summary.streamPool;
  assert.ok(pool !== null);
  assert.equal(pool.peakStreams, 4);
  // A stream holds one write slice and the frame arriving, never the window (16 MiB here).
  assert.ok(pool.memoryBoundBytes <= 4 * 1024 * 1024, `bound ${pool.memoryBoundBytes}`);
  assert.ok(
    pool.peakBufferBytes > 0 && pool.peakBufferBytes <= pool.memoryBoundBytes,
    `peak ${pool.peakBufferBytes} bytes of chunk buffers, bound ${pool.memoryBoundBytes}`,
  );
  assert.equal(
    summary.streams.reduce((sum, stream) => sum + stream.bytes, 0),
    summary.bytes,
  );
});
