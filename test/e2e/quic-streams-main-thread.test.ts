/**
 * Where a pull's data streams run, through the CLI: QUIC ones in the main thread, never in a
 * worker thread (the QUIC binding corrupts the heap when a worker exits with its calls pending,
 * nodejs/node#55706), TCP ones in worker threads.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import type { PullSummary } from "../../src/client/pull.js";
import { quicAvailable } from "../../src/transport/quic.js";
import type { TransportKind } from "../../src/transport/transport.js";
import { runCli } from "../helpers/cli.js";
import { hostWithCli, makeShare } from "../helpers/share.js";
import { compareTrees, makeTree } from "../helpers/tree.js";

const skip = quicAvailable ? false : "QUIC's native binding is not installed on this platform";

async function pullOver(t: TestContext, transport: TransportKind): Promise<PullSummary> {
  const { base, share } = await makeShare(t, `threads-${transport}`);
  const info = await makeTree(share);
  const host = await hostWithCli(t, { base, share });
  const dest = join(base, "dest");
  const result = await runCli(["pull", host.link, dest, "--json", "--transport", transport], {
    TELEPORT_HOME: join(base, "client-home"),
  });
  assert.equal(result.code, 0, result.stderr);
  await compareTrees(share, dest, { ignore: info.outsideLinks });
  return JSON.parse(result.stdout) as PullSummary;
}

test("a QUIC pull runs its data streams in the main thread, with no worker thread", { skip }, async (t) => {
  const summary = await pullOver(t, "quic");
  assert.equal(summary.transport, "quic");
  assert.ok(summary.streams.length >= 1, "data streams carried the pull");
  assert.deepEqual(summary.streamPool?.threads, { worker: 0, main: 1 });
});

test("a TCP pull still runs its data streams in worker threads", async (t) => {
  const summary = await pullOver(t, "tcp");
  assert.equal(summary.transport, "tcp");
  assert.ok(summary.streams.length >= 1, "data streams carried the pull");
  assert.equal(summary.streamPool?.threads.main, 0);
  assert.ok((summary.streamPool?.threads.worker ?? 0) >= 2, "the streams spread over workers");
});
