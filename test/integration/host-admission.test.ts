/**
 * A host serving as many clients as it takes: clients that can wait are refused with HOST_BUSY
 * and a time to retry in, and a pull honours it, completing once the host has room; the count
 * spans the host's threads, and a pull's data streams are not counted.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { PullEvent } from "../../src/client/pull.js";
import { pullLink } from "../../src/client/pull-link.js";
import { type TeleportClient as Client, TeleportClient } from "../../src/index.js";
import { onCleanup } from "../helpers/context.js";
import { hostInProcess, makeShare } from "../helpers/share.js";

/** Lists the share's root: a request that names a path, as a pull's first does. */
async function listRoot(client: Client): Promise<number> {
  let entries = 0;
  for await (const _ of client.list("")) entries++;
  return entries;
}

test("a host at its limit refuses with HOST_BUSY and when to retry, and the pull retries then", async (t) => {
  const folder = await makeShare(t, "admission", { "a.txt": "admitted after waiting\n" });
  const host = await hostInProcess(t, { ...folder, maxClients: 1, transports: ["tcp"], threads: 2 });
  const first = await TeleportClient.connect(host.url);
  onCleanup(t, () => first.close());
  assert.equal(await listRoot(first), 1); // the host's one client

  const second = await TeleportClient.connect(host.url);
  onCleanup(t, () => second.close());
  await assert.rejects(listRoot(second), (err: Error & { retryAfterMs?: number }) => {
    assert.match(err.message, /^TELEPORT_ERR_HOST_BUSY: host: host busy, retry in \d s$/);
    assert.ok(err.retryAfterMs !== undefined && err.retryAfterMs >= 1000 && err.retryAfterMs <= 3000);
    return true;
  });
  await second.close();

  const events: PullEvent[] = [];
  const summary = await pullLink(host.url, {
    dest: join(folder.base, "dest"),
    index: null,
    transport: "tcp",
    onProgress: (event) => {
      events.push(event);
      if (event.type === "retry") void first.close(); // room for the pull once it is told to wait
    },
  });
  const retries = events.filter((event) => event.type === "retry");
  assert.deepEqual(
    retries.map((event) => event.type === "retry" && event.error.code),
    ["TELEPORT_ERR_HOST_BUSY"],
  );
  assert.equal(summary.attempts, 2);
  assert.equal(await readFile(join(folder.base, "dest", "a.txt"), "utf8"), "admitted after waiting\n");
});
