/**
 * Compression end to end, over real sockets between an in-process host and a pull: compressible,
 * dense, mixed, empty and tiny files come out identical with fewer bytes on the wire where it
 * pays; a host that does not compress is never asked to; a corrupt compressed frame is refused.
 */
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { TeleportClient } from "../../src/client/client.js";
import { CompressionPolicy } from "../../src/client/pool/compression-policy.js";
import { type PullOptions, type PullSummary, pull } from "../../src/client/pull.js";
import { ErrorCode, TeleportError } from "../../src/errors.js";
import type { Host } from "../../src/host/host.js";
import { FRAME_HEADER_SIZE } from "../../src/wire/frame.js";
import { CHUNK_DATA_HEADER_SIZE, MessageType } from "../../src/wire/messages.js";
import { hostInProcess, makeShare, type TestHostOptions } from "../helpers/share.js";
import { compareTrees, compressibleText, isAbsent, MiB, pseudoRandomBytes } from "../helpers/tree.js";

async function fixture(t: TestContext, hostOptions: TestHostOptions = {}) {
  const { base, share } = await makeShare(t, "compression");
  await mkdir(join(share, "src"), { recursive: true });
  await writeFile(join(share, "src", "large.ts"), compressibleText(3 * MiB, "large"));
  for (let i = 0; i < 20; i++)
    await writeFile(join(share, "src", `small-${i}.ts`), compressibleText(3000, `small${i}`));
  await writeFile(join(share, "random.bin"), pseudoRandomBytes(2 * MiB, "compression"));
  await writeFile(
    join(share, "mixed.bin"),
    Buffer.concat([compressibleText(MiB, "mixed"), pseudoRandomBytes(MiB, "mixed")]),
  );
  await writeFile(join(share, "empty"), "");
  await writeFile(join(share, "tiny.txt"), "hi\n");
  await writeFile(join(share, "archive.zip"), compressibleText(MiB, "zip")); // compressible, but named as compressed
  const host = await hostInProcess(t, {
    base,
    share,
    ...hostOptions,
  });
  return { base, share, host };
}

async function pullWith(
  host: Host,
  dest: string,
  compression: CompressionPolicy,
  options: Partial<PullOptions> = {},
): Promise<PullSummary> {
  const client = await TeleportClient.connect(host.url);
  try {
    return await pull(client, { ...options, dest, compression });
  } finally {
    await client.close();
  }
}

test("a mixed tree comes out identical, with compressible data sent compressed", async (t) => {
  const { base, share, host } = await fixture(t);
  const on = await pullWith(host, join(base, "on"), new CompressionPolicy("on"));
  await compareTrees(share, join(base, "on"));
  const off = await pullWith(host, join(base, "off"), new CompressionPolicy("off"));
  await compareTrees(share, join(base, "off"));
  assert.equal(on.bytesFromNetwork, off.bytesFromNetwork);
  assert.ok(off.bytesOnWire >= off.bytesFromNetwork, "uncompressed: every byte and a header per chunk");
  // 3 + 0.06 + 1 MiB of text at ~4x; 2 + 1 MiB dense and 1 MiB in a .zip as they are.
  assert.ok(
    on.bytesOnWire < 0.6 * off.bytesOnWire,
    `${on.bytesOnWire} on the wire, ${off.bytesOnWire} without`,
  );
});

test("dense data and files of compressed formats are never sent compressed", async (t) => {
  const { base, host } = await fixture(t);
  for (const name of ["random.bin", "archive.zip"]) {
    const summary = await pullWith(host, join(base, name), new CompressionPolicy("on"), { remotePath: name });
    assert.ok(summary.bytesOnWire >= summary.bytesFromNetwork, `${name}: ${summary.bytesOnWire} on the wire`);
  }
});

test("a host that does not compress is not asked to, and the pull is whole", async (t) => {
  const { base, share, host } = await fixture(t, { compression: false });
  const summary = await pullWith(host, join(base, "dest"), new CompressionPolicy("on"));
  await compareTrees(share, join(base, "dest"));
  assert.ok(summary.bytesOnWire >= summary.bytesFromNetwork);
});

test("auto compresses nothing on loopback, where the CPU is the limit", async (t) => {
  const { base, host } = await fixture(t);
  const summary = await pullWith(host, join(base, "dest"), new CompressionPolicy("auto"));
  assert.ok(summary.bytesOnWire >= summary.bytesFromNetwork);
});

test("a corrupt compressed chunk fails the pull with a clear error and leaves nothing under the final name", async (t) => {
  const { base, host } = await fixture(t, {
    faults: {
      beforeSend: (frames) => {
        // Garbles the payload of every compressed frame in the group.
        for (let at = 0; at < frames.length; at += 4 + frames.readUInt32LE(at)) {
          if (frames[at + 4] !== MessageType.CHUNK_ZSTD) continue;
          const payload = at + FRAME_HEADER_SIZE + CHUNK_DATA_HEADER_SIZE;
          frames.fill(0x5a, payload + 4, Math.min(payload + 64, at + 4 + frames.readUInt32LE(at)));
        }
      },
    },
  });
  const dest = join(base, "dest");
  await assert.rejects(
    pullWith(host, dest, new CompressionPolicy("on"), { remotePath: "src/large.ts" }),
    (err: unknown) => {
      assert.ok(err instanceof TeleportError, String(err));
      assert.ok([ErrorCode.PROTOCOL, ErrorCode.CHUNK_CORRUPT].includes(err.code as never), err.code);
      return true;
    },
  );
  assert.ok(await isAbsent(join(dest, "large.ts")));
});

test("the host compresses harder while the link holds the transfer up, unless the level is pinned", async (t) => {
  const { base, share } = await makeShare(t, "compression-adaptive");
  for (let i = 0; i < 8; i++) await writeFile(join(share, `part-${i}.ts`), compressibleText(MiB, `part${i}`));
  // A slow link: every chunk waits before it goes, while the compressor has nothing to do (a
  // group of 1 MiB takes ~4 ms to compress, ~40 ms on a loaded machine, and ~190 ms to "send").
  const host = await hostInProcess(t, {
    base,
    share,
    faults: { beforeChunk: () => new Promise((resolve) => setTimeout(resolve, 12)) },
  });
  const stats = host.compressionStats;
  assert.ok(stats !== undefined);

  await pullWith(host, join(base, "adaptive"), new CompressionPolicy("on"), { streams: 1 });
  await compareTrees(share, join(base, "adaptive"));
  const adaptiveLevels = [...stats.bytesInByLevel.keys()];
  assert.ok(
    adaptiveLevels.some((level) => level > 3),
    `levels used: ${adaptiveLevels.join(", ")}; the compressor idled, so the level should have risen`,
  );

  stats.bytesInByLevel.clear();
  await pullWith(host, join(base, "pinned"), new CompressionPolicy("on", 2), { streams: 1 });
  await compareTrees(share, join(base, "pinned"));
  assert.deepEqual([...stats.bytesInByLevel.keys()], [2]);
});
