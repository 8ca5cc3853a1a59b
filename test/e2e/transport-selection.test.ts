/**
 * Which transport a pull takes, end to end through the CLI: QUIC on request, TCP by default,
 * QUIC when TCP does not get through (a host listening for QUIC only stands in for a network
 * that blocks TCP, one without QUIC for a network that blocks UDP), and a clear error in
 * bounded time when neither does.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import type { PullSummary } from "../../src/client/pull.js";
import { Host } from "../../src/host/host.js";
import { quicAvailable } from "../../src/transport/quic.js";
import type { TransportKind } from "../../src/transport/transport.js";
import { runCli, startHost } from "../helpers/cli.js";
import { onCleanup, tempDir } from "../helpers/context.js";
import { compareTrees, isAbsent, makeTree } from "../helpers/tree.js";

const skip = quicAvailable ? false : "QUIC's native binding is not installed on this platform";

async function fixture(t: TestContext, transports?: TransportKind[]) {
  const base = await tempDir(t, "transport");
  const share = join(base, "share");
  const info = await makeTree(share);
  const env = { TELEPORT_HOME: join(base, "client-home") };
  if (transports === undefined) {
    const host = await startHost(share, { home: join(base, "host-home") });
    onCleanup(t, () => host.stop());
    return { base, share, info, env, link: host.link };
  }
  const host = await Host.start({
    root: share,
    home: join(base, "host-home"),
    bind: "127.0.0.1",
    transports,
  });
  onCleanup(t, () => host.close());
  return { base, share, info, env, link: host.url };
}

const pullArgs = (link: string, dest: string, ...more: string[]) => ["pull", link, dest, "--json", ...more];

test("pull --transport quic: the whole tree over QUIC, identical", { skip }, async (t) => {
  const { base, share, info, env, link } = await fixture(t);
  const result = await runCli(pullArgs(link, join(base, "dest"), "--transport", "quic"), env);
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout) as PullSummary;
  assert.equal(summary.transport, "quic");
  assert.ok(summary.streams.length >= 1);
  await compareTrees(share, join(base, "dest"), { ignore: info.outsideLinks });
});

test("auto uses TCP where it gets through, and the host's UDP port is not needed", { skip }, async (t) => {
  const { base, share, info, env, link } = await fixture(t, ["tcp"]);
  const result = await runCli(pullArgs(link, join(base, "dest")), env);
  assert.equal(result.code, 0, result.stderr);
  assert.equal((JSON.parse(result.stdout) as PullSummary).transport, "tcp");
  await compareTrees(share, join(base, "dest"), { ignore: info.outsideLinks });
  assert.doesNotMatch(result.stderr, /QUIC/);
});

test("auto falls back to QUIC when TCP does not get through, and says so", { skip }, async (t) => {
  const { base, share, info, env, link } = await fixture(t, ["quic"]);
  const result = await runCli(pullArgs(link, join(base, "dest")), env);
  assert.equal(result.code, 0, result.stderr);
  assert.equal((JSON.parse(result.stdout) as PullSummary).transport, "quic");
  assert.match(result.stderr, /TCP to .* failed .*; using QUIC/);
  await compareTrees(share, join(base, "dest"), { ignore: info.outsideLinks });
});

test("--transport quic to a host without QUIC: a clear error in bounded time", { skip }, async (t) => {
  const { base, env, link } = await fixture(t, ["tcp"]);
  const started = performance.now();
  const result = await runCli(
    pullArgs(link, join(base, "dest"), "--transport", "quic", "--timeout", "2"),
    env,
  );
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /TELEPORT_ERR_(TIMEOUT|CONNECTION)/);
  assert.ok(performance.now() - started < 10_000, "gave up within the timeout, plus start-up");
  assert.ok(await isAbsent(join(base, "dest")), "nothing written");
});

test("neither TCP nor QUIC gets through: one clear error naming both, in bounded time", async (t) => {
  const base = await tempDir(t, "transport-dead");
  const env = { TELEPORT_HOME: join(base, "client-home") };
  const closed = await Host.start({ root: base, home: join(base, "host-home"), bind: "127.0.0.1" });
  const deadLink = closed.url;
  await closed.close(); // its port, TCP and UDP, now refuses or ignores
  const started = performance.now();
  const result = await runCli(pullArgs(deadLink, join(base, "dest"), "--timeout", "2"), env);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /TELEPORT_ERR_(CONNECTION|TIMEOUT)/);
  if (quicAvailable) assert.match(result.stderr, /over TCP .* nor QUIC/);
  assert.ok(performance.now() - started < 10_000, "gave up within the timeout, plus start-up");
});
