/**
 * Compression end to end, over real sockets between an in-process host and a pull: compressible,
 * dense, mixed, empty and tiny files come out identical with fewer bytes on the wire where it
 * pays; a host that does not compress is never asked to; a corrupt compressed frame is refused.
 */
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { TeleportClient } from "../../src/client/client.js";
import { CompressionPolicy } from "../../src/client/pool/compression-policy.js";
import { type PullOptions, type PullSummary, pull } from "../../src/client/pull.js";
import { ErrorCode, TeleportError } from "../../src/errors.js";
import type { Host } from "../../src/host/host.js";
import type { HostFaults } from "../../src/serve/faults.js";
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

/**
 * A slow link for the host's chunk frames, paced by the compressor it stands behind so that the
 * compressor idles most of the time however fast this machine is, and however loaded: once told
 * to `hold`, one chunk crosses at a time, taking 12 ms or, if longer, four times as long as the
 * compressor took for as many bytes in the group it last finished (from the group's last chunk
 * crossing to its frames going out). It holds the transfer up until `done()` says so.
 */
class SlowLink {
  #done: (() => boolean) | undefined;
  /** Each held chunk's size, by hash, and when it crossed. */
  readonly #crossed = new Map<string, { size: number; at: number }>();
  #compressMsPerByte = 0;
  #free: Promise<void> = Promise.resolve();

  hold(done: () => boolean): void {
    this.#done = done;
  }

  readonly faults: HostFaults = {
    beforeChunk: async (request) => {
      if (this.#done?.() !== false) {
        this.#done = undefined;
        return;
      }
      const crossing = this.#free.then(() => delay(Math.max(12, 4 * request.size * this.#compressMsPerByte)));
      this.#free = crossing;
      await crossing;
      this.#crossed.set(request.hash.toString("hex"), { size: request.size, at: performance.now() });
    },
    beforeSend: (frames) => {
      let bytes = 0;
      let crossed = 0;
      for (let at = 0; at < frames.length; at += 4 + frames.readUInt32LE(at)) {
        const hash = at + FRAME_HEADER_SIZE;
        const chunk = this.#crossed.get(frames.toString("hex", hash, hash + CHUNK_DATA_HEADER_SIZE));
        if (chunk === undefined) return; // not held
        bytes += chunk.size;
        crossed = Math.max(crossed, chunk.at);
      }
      if (bytes > 0) this.#compressMsPerByte = (performance.now() - crossed) / bytes;
    },
  };
}

test("the host compresses harder while the link holds the transfer up, unless the level is pinned", async (t) => {
  const { base, share } = await makeShare(t, "compression-adaptive");
  for (let i = 0; i < 12; i++)
    await writeFile(join(share, `part-${i}.ts`), compressibleText(MiB, `part${i}`));
  const link = new SlowLink();
  const host = await hostInProcess(t, { base, share, faults: link.faults });
  const stats = host.compressionStats;
  assert.ok(stats !== undefined);
  // The compression threads start at the host's first compression: a first pull starts them, so
  // that the link is paced by compressing, not by their start.
  await pullWith(host, join(base, "warm-up"), new CompressionPolicy("on"), { remotePath: "part-0.ts" });
  stats.bytesInByLevel.clear();

  // The link holds the transfer up until a level past the one it starts at (3) has been used.
  // The compressor idles all along, so the level rises at the first look (after 200 ms and two
  // groups), or a later one if a load spike stretched a compression; if it never does, the whole
  // pull goes at the link's pace and the check below fails.
  const risen = () => [...stats.bytesInByLevel.keys()].some((level) => level > 3);
  link.hold(risen);
  await pullWith(host, join(base, "adaptive"), new CompressionPolicy("on"), { streams: 1 });
  await compareTrees(share, join(base, "adaptive"));
  assert.ok(
    risen(),
    `levels used: ${[...stats.bytesInByLevel.keys()].join(", ")}; the compressor idled, so the level should have risen`,
  );

  stats.bytesInByLevel.clear();
  await pullWith(host, join(base, "pinned"), new CompressionPolicy("on", 2), { streams: 1 });
  await compareTrees(share, join(base, "pinned"));
  assert.deepEqual([...stats.bytesInByLevel.keys()], [2]);
});
