/**
 * Regression: the host used to wait for Node's 'drain' (an empty send queue) after each chunk.
 * With a fast client keeping many requests in flight the queue never emptied, finished requests
 * stayed open, and the host closed the connection for having more than 256 open.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { hashBytes } from "../../src/chunking/hash.js";
import { TeleportClient } from "../../src/client/client.js";
import { onCleanup } from "../helpers/context.js";
import { hostInProcess, makeShare } from "../helpers/share.js";
import { pseudoRandomBytes } from "../helpers/tree.js";

test("a client keeping 64 chunk requests in flight is served without hitting the open-request cap", async (t) => {
  const { base, share } = await makeShare(t, "pipelining");
  const chunkSize = 1024 * 1024;
  const data = pseudoRandomBytes(16 * chunkSize, "pipelining");
  await writeFile(join(share, "data.bin"), data);
  const host = await hostInProcess(t, { base, share });
  const client = await TeleportClient.connect(host.url);
  onCleanup(t, () => client.close());

  const chunks = Array.from({ length: 16 }, (_, i) => {
    const offset = i * chunkSize;
    return {
      path: "data.bin",
      offset,
      size: chunkSize,
      hash: hashBytes(data.subarray(offset, offset + chunkSize)),
    };
  });
  // Like the pull engine, issue the next request as soon as a chunk's bytes are in, without
  // waiting for its request's END.
  let received = 0;
  let awaitingData = 0;
  let wake: (() => void) | undefined;
  const requests: Promise<void>[] = [];
  for (let request = 0; request < 1000; request++) {
    while (awaitingData >= 64) await new Promise<void>((resolve) => (wake = resolve));
    const chunk = chunks[request % chunks.length];
    assert.ok(chunk !== undefined);
    awaitingData++;
    let arrived = false;
    const dataIn = () => {
      if (arrived) return;
      arrived = true;
      awaitingData--;
      wake?.();
    };
    const fetching = client.fetchChunks([chunk], (_request, body) => {
      received += body.length;
      client.pool.release(body);
      dataIn();
    });
    fetching.catch(dataIn);
    requests.push(fetching);
  }
  await Promise.all(requests);
  assert.equal(received, 1000 * chunkSize);
});

test("a client opening more than 256 requests at once gets the host's PROTOCOL error, not a reset", async (t) => {
  const { base, share } = await makeShare(t, "request-cap");
  const data = pseudoRandomBytes(64 * 1024, "request-cap");
  await writeFile(join(share, "small.bin"), data);
  // Each answer takes a moment, so the requests are all still open when the flood is complete.
  const host = await hostInProcess(t, {
    base,
    share,
    faults: { beforeChunk: () => new Promise((resolve) => setTimeout(resolve, 200)) },
  });
  const client = await TeleportClient.connect(host.url);
  onCleanup(t, () => client.close());

  const chunk = { path: "small.bin", offset: 0, size: data.length, hash: hashBytes(data) };
  const outcomes = await Promise.allSettled(
    Array.from({ length: 400 }, () =>
      client.fetchChunks([chunk], (_request, body) => client.pool.release(body)),
    ),
  );
  const failures = outcomes.filter((outcome) => outcome.status === "rejected");
  assert.ok(failures.length > 0, "the host must refuse a flood of open requests");
  for (const failure of failures) {
    const reason = (failure as PromiseRejectedResult).reason as Error;
    assert.match(reason.message, /TELEPORT_ERR_PROTOCOL: host: more than 256 requests open at once/);
  }
});
