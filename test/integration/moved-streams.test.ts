/**
 * A host with threads serves QUIC in its main thread alone. A data stream that moves there from
 * a client connected over TCP (a transport trial) is served while that client is the host's one,
 * and closed (a lost stream to the client) while other clients are served: under load every client's trial
 * would otherwise move its streams onto one core. A client connected over QUIC keeps its streams.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { hashBytes } from "../../src/chunking/hash.js";
import { TeleportClient } from "../../src/client/client.js";
import { platformIo } from "../../src/platform/io.js";
import { quicAvailable } from "../../src/transport/quic.js";
import type { ChunkRequest } from "../../src/wire/messages.js";
import { onCleanup } from "../helpers/context.js";
import { hostInProcess, makeShare } from "../helpers/share.js";
import { pseudoRandomBytes } from "../helpers/tree.js";

// Without the addon the host serves TCP in its main thread too, so a QUIC stream moves nowhere.
const skip = !quicAvailable
  ? "QUIC's native binding is not installed on this platform"
  : platformIo.kind !== "native"
    ? "without the native addon the host has no threads for a stream to move from"
    : false;

/** A client connected over `transport` (as `clientId`'s stream, when given), closed after the test. */
async function connect(
  t: TestContext,
  url: string,
  transport: "tcp" | "quic",
  clientId?: Buffer,
): Promise<TeleportClient> {
  const client = await TeleportClient.connect(url, {
    transport,
    ...(clientId === undefined ? {} : { clientId }),
  });
  onCleanup(t, () => client.close());
  return client;
}

/** Lists the share's root: a request that names a path, which makes the connection's client counted. */
async function listRoot(client: TeleportClient): Promise<void> {
  for await (const _ of client.list("")) {
    // the listing's entries are not the point
  }
}

async function fetchOne(client: TeleportClient, chunk: ChunkRequest): Promise<number> {
  let bytes = 0;
  await client.fetchChunks([chunk], (_request, data) => {
    bytes += data.length;
    client.pool.release(data);
  });
  return bytes;
}

test("a QUIC data stream of a TCP client is served while it is alone, refused once others are served", {
  skip,
}, async (t) => {
  const { base, share } = await makeShare(t, "moved-streams");
  const data = pseudoRandomBytes(256 * 1024, "moved");
  await writeFile(join(share, "data.bin"), data);
  const chunk = { path: "data.bin", offset: 0, size: data.length, hash: hashBytes(data) };
  const host = await hostInProcess(t, { base, share, threads: 2 });

  const first = await connect(t, host.url, "tcp");
  await listRoot(first);
  const alone = await connect(t, host.url, "quic", first.clientId);
  assert.equal(await fetchOne(alone, chunk), data.length, "the host's one client may move its streams");

  const second = await connect(t, host.url, "tcp");
  await listRoot(second);
  const moved = await connect(t, host.url, "quic", first.clientId);
  // Closed with no ERROR: a lost stream to the client's pool, not a failed batch.
  await assert.rejects(fetchOne(moved, chunk), (err: Error & { code?: string }) => {
    assert.notEqual(err.code, "TELEPORT_ERR_HOST_BUSY", err.message);
    assert.match(err.message, /clos|reset|lost|connection/i);
    return true;
  });
  assert.equal(await fetchOne(alone, chunk), data.length, "a stream taken before is kept");

  const overQuic = await connect(t, host.url, "quic");
  await listRoot(overQuic);
  const itsStream = await connect(t, host.url, "quic", overQuic.clientId);
  assert.equal(
    await fetchOne(itsStream, chunk),
    data.length,
    "a client connected over QUIC keeps its streams",
  );
});
