/**
 * The stream pool heals: a data connection cut in the middle of a transfer hands its open
 * batches to the other streams and is replaced, and the file arrives whole. When no stream can
 * reach the host any more, the pull fails with a clear error instead of hanging.
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import fc from "fast-check";
import { TeleportClient } from "../../src/client/client.js";
import { pull } from "../../src/client/pull.js";
import { pullLink } from "../../src/client/pull-link.js";
import { ErrorCode, TeleportError } from "../../src/errors.js";
import type { HostFaults } from "../../src/serve/faults.js";
import { NO_HANG_TIMEOUT_MS, onCleanup } from "../helpers/context.js";
import { hostInProcess, makeShare } from "../helpers/share.js";
import { findPartFiles, pseudoRandomBytes } from "../helpers/tree.js";

const MiB = 1024 * 1024;

/** A share holding one file `data.bin` of `content`, served by an in-process host with `faults`. */
async function serveFile(t: TestContext, label: string, content: Buffer, faults?: HostFaults) {
  const { base, share } = await makeShare(t, label);
  await writeFile(join(share, "data.bin"), content);
  const host = await hostInProcess(t, {
    base,
    share,
    ...(faults === undefined ? {} : { faults }),
  });
  return { base, host };
}

async function connect(t: TestContext, url: string): Promise<TeleportClient> {
  const client = await TeleportClient.connect(url);
  onCleanup(t, () => client.destroy());
  return client;
}

test("a data stream cut mid-transfer is healed by the others, with every byte intact", async (t) => {
  const content = pseudoRandomBytes(24 * MiB, "stream-cut");
  let served = 0;
  let cuts = 0;
  const { base, host } = await serveFile(t, "stream-cut", content, {
    beforeChunk: async (request, connection) => {
      served += request.size;
      // Twice, a third and two thirds of the way in: the connection serving the chunk dies.
      if (served >= ((cuts + 1) * content.length) / 3 && cuts < 2) {
        cuts++;
        connection.destroy();
      }
    },
  });
  const client = await connect(t, host.url);

  const dest = join(base, "dest");
  const summary = await pull(client, { dest, streams: 3 });

  assert.equal(cuts, 2);
  assert.ok((await readFile(join(dest, "data.bin"))).equals(content), "the file arrived whole");
  assert.deepEqual(await findPartFiles(dest), []);
  const pool = summary.streamPool;
  assert.ok(pool !== null);
  assert.equal(pool.streamsLost, 2);
  assert.ok(pool.batchesReissued >= 2, `${pool.batchesReissued} batches reissued`);
  // The two lost streams were replaced: three at a time throughout, five in all.
  assert.equal(pool.peakStreams, 3);
  assert.equal(summary.bytesFromNetwork, content.length);
  assert.ok(summary.streams.length >= 3 && summary.streams.length <= 5);
});

test("data streams cut at random points (fast-check) are healed, every byte intact", async (t) => {
  const content = pseudoRandomBytes(8 * MiB, "stream-cuts");
  let cutAt: number[] = [];
  let served = 0;
  let cuts = 0;
  const { base, host } = await serveFile(t, "stream-cuts", content, {
    beforeChunk: async (request, connection) => {
      served += request.size;
      if (cutAt.length > 0 && served >= (cutAt[0] as number)) {
        cutAt.shift();
        cuts++;
        connection.destroy();
      }
    },
  });
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.uniqueArray(fc.integer({ min: 1, max: content.length - 1 }), { minLength: 1, maxLength: 4 }),
      fc.integer({ min: 1, max: 6 }),
      async (points, streams) => {
        cutAt = [...points].sort((a, b) => a - b);
        served = 0;
        const dest = join(base, `dest-${run++}`);
        // A batch that fails on 3 streams fails the pull's run; pullLink then resumes it. No
        // chunk index: every run's chunks cross the data streams the cuts are made in.
        const summary = await pullLink(host.url, { dest, streams, index: null });
        assert.ok((await readFile(join(dest, "data.bin"))).equals(content), "the file arrived whole");
        assert.deepEqual(await findPartFiles(dest), []);
        const lost = summary.streamPool?.streamsLost ?? 0;
        assert.ok(lost <= points.length, `${lost} streams lost for ${points.length} cuts`);
      },
    ),
    { numRuns: 12 },
  );
  assert.ok(cuts >= 12, `only ${cuts} cuts were made`);
});

test("a pull whose host goes away fails with a connection error instead of hanging", {
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const content = pseudoRandomBytes(16 * MiB, "stream-gone");
  let served = 0;
  let destroyHost: (() => void) | undefined;
  const { base, host } = await serveFile(t, "stream-gone", content, {
    beforeChunk: async (request) => {
      served += request.size;
      if (served >= content.length / 2) destroyHost?.();
      await new Promise((resolve) => setImmediate(resolve));
    },
  });
  destroyHost = () => host.destroy();
  const client = await connect(t, host.url);

  await assert.rejects(pull(client, { dest: join(base, "dest"), streams: 2 }), (err: unknown) => {
    assert.ok(err instanceof TeleportError);
    assert.ok(err.code === ErrorCode.CONNECTION, `${err.code}: ${err.message}`);
    return true;
  });
  // A hang is failed by the test timeout.
});

test("two clients pulling from one host at once both finish, neither starved", async (t) => {
  const content = pseudoRandomBytes(32 * MiB, "two-clients");
  const { base, host } = await serveFile(t, "two-clients", content);
  const clients = await Promise.all([connect(t, host.url), connect(t, host.url)]);

  // Served side by side, the one that finishes second has been receiving all along; one served
  // after the other would not have begun. (How close together they finish is the benchmark's.)
  const bytesDone = [0, 0];
  const othersBytesAtFinish: number[] = [];
  await Promise.all(
    clients.map(async (client, i) => {
      const dest = join(base, `dest-${i}`);
      await pull(client, {
        dest,
        streams: 2,
        onProgress: (event) => {
          if (event.type === "bytes") bytesDone[i] = event.done;
        },
      });
      othersBytesAtFinish.push(bytesDone[1 - i] ?? 0);
      assert.ok((await readFile(join(dest, "data.bin"))).equals(content));
    }),
  );
  const [atFirstFinish] = othersBytesAtFinish;
  assert.ok(
    atFirstFinish !== undefined && atFirstFinish > 0,
    `the other client had ${atFirstFinish} bytes when the first finished`,
  );
});
