/**
 * Which transport a pull takes, end to end through the CLI: QUIC on request, TCP by default,
 * QUIC when TCP does not get through (a host listening for QUIC only stands in for a network
 * that blocks TCP, one without QUIC for a network that blocks UDP), and a clear error when
 * neither does (how soon is the benchmark suite's to measure).
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { MIN_PROBE_RTT_MS } from "../../src/client/pool/stream-tuner.js";
import type { PullSummary } from "../../src/client/pull.js";
import { Host } from "../../src/host/host.js";
import { quicAvailable } from "../../src/transport/quic.js";
import type { TransportKind } from "../../src/transport/transport.js";
import { runCli } from "../helpers/cli.js";
import { NO_HANG_TIMEOUT_MS, onCleanup, tempDir } from "../helpers/context.js";
import { holdPort, linkToPort } from "../helpers/ports.js";
import { type Shape, slowConnectEnv, startShapedPath } from "../helpers/shaped-path.js";
import { hostInProcess, hostWithCli, makeShare } from "../helpers/share.js";
import { compareTrees, isAbsent, MiB, makeTree, pseudoRandomBytes } from "../helpers/tree.js";

const skip = quicAvailable ? false : "QUIC's native binding is not installed on this platform";

async function fixture(t: TestContext, transports?: TransportKind[]) {
  const { base, share } = await makeShare(t, "transport");
  const info = await makeTree(share);
  const env = { TELEPORT_HOME: join(base, "client-home") };
  if (transports === undefined) {
    const host = await hostWithCli(t, { base, share });
    return { base, share, info, env, link: host.link };
  }
  const host = await hostInProcess(t, {
    base,
    share,
    transports,
  });
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

test("--transport quic to a host without QUIC: a clear error, no hang", {
  skip,
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const { base, env, link } = await fixture(t, ["tcp"]);
  const result = await runCli(
    pullArgs(link, join(base, "dest"), "--transport", "quic", "--timeout", "2"),
    env,
  );
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /TELEPORT_ERR_(TIMEOUT|CONNECTION)/);
  assert.ok(await isAbsent(join(base, "dest")), "nothing written");
});

test("neither TCP nor QUIC gets through: one clear error naming both, no hang", {
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const base = await tempDir(t, "transport-dead");
  const env = { TELEPORT_HOME: join(base, "client-home") };
  const closed = await Host.start({ root: base, home: join(base, "host-home"), bind: "127.0.0.1" });
  await closed.close();
  const refusing = await holdPort(t); // TCP refuses, UDP ignores
  const deadLink = linkToPort(closed.url, refusing.port);
  const result = await runCli(pullArgs(deadLink, join(base, "dest"), "--timeout", "2"), env);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /TELEPORT_ERR_(CONNECTION|TIMEOUT)/);
  if (quicAvailable) assert.match(result.stderr, /over TCP .* nor QUIC/);
});

/**
 * A 24 MiB file pulled through a shaped path with 20 ms of round trip (long enough for the pool
 * to try the other transport), over 4 pinned streams so the stream tuner has settled from the
 * start. Returns the pull's summary and what it said on stderr.
 *
 * The relay delays data, but the kernel answers its TCP handshake at once, and the pull's
 * shortest round trip is the handshake's; the slow-connect shim makes it the path's. Where the
 * shim cannot be built (no C compiler) the test is skipped, saying so, and undefined returned.
 */
async function pullThroughShapedPath(
  t: TestContext,
  shapes: { tcp: Shape; udp: Shape },
  transports?: TransportKind[],
): Promise<{ summary: PullSummary; stderr: string } | undefined> {
  const slowConnect = slowConnectEnv(20);
  if (slowConnect === undefined) {
    t.skip("no C compiler to build the slow-connect shim, so the path's round trip looks short");
    return undefined;
  }
  const { base, share } = await makeShare(t, "transport-shaped");
  await writeFile(join(share, "big.bin"), pseudoRandomBytes(24 * MiB, "shaped"));
  const host = await hostInProcess(t, {
    base,
    share,
    ...(transports === undefined ? {} : { transports }),
  });
  const path = await startShapedPath(host.port, shapes);
  onCleanup(t, () => path.close());
  const link = linkToPort(host.url, path.port);
  const env = { TELEPORT_HOME: join(base, "client-home"), ...slowConnect };
  const result = await runCli(pullArgs(link, join(base, "dest"), "--streams", "4"), env);
  assert.equal(result.code, 0, result.stderr);
  await compareTrees(share, join(base, "dest"));
  const summary = JSON.parse(result.stdout) as PullSummary;
  const minRttMs = summary.streamPool?.minRttMs ?? null;
  assert.ok(
    minRttMs !== null && minRttMs >= MIN_PROBE_RTT_MS,
    `the pull saw a path long enough to try the other transport on (shortest round trip ${minRttMs} ms)`,
  );
  return { summary, stderr: result.stderr };
}

test("auto moves the data streams to QUIC mid-pull where TCP is shaped, and says so", { skip }, async (t) => {
  const pulled = await pullThroughShapedPath(t, {
    tcp: { delayMs: 10, bytesPerSecond: 4 * MiB },
    udp: { delayMs: 10 },
  });
  if (pulled === undefined) return; // skipped
  const { summary, stderr } = pulled;
  assert.equal(summary.transport, "tcp", "connected over TCP, which got through first");
  const pool = summary.streamPool;
  assert.ok(pool !== null);
  assert.deepEqual(
    pool.transportTrials.map((step) => step.reason),
    ["start", "trying", "switched"],
  );
  assert.ok(pool.bytesByTransport.quic > 0 && pool.bytesByTransport.tcp > 0);
  assert.match(stderr, /QUIC delivers .*x TCP's rate per stream here; moving the data streams to QUIC/);
});

test("auto tries QUIC mid-pull and keeps TCP where UDP is policed", { skip }, async (t) => {
  const pulled = await pullThroughShapedPath(t, {
    tcp: { delayMs: 10, bytesPerSecond: 6 * MiB }, // so that the pull lasts long enough to try
    udp: { delayMs: 10, bytesPerSecond: 256 * 1024 },
  });
  if (pulled === undefined) return; // skipped
  const { summary, stderr } = pulled;
  const trials = summary.streamPool?.transportTrials ?? [];
  assert.deepEqual(
    trials.map((step) => step.reason),
    ["start", "trying", "kept"],
  );
  // Kept on the rates it measured (how they compare is the benchmark suite's to show).
  const kept = trials[2]?.perStream;
  assert.ok(kept !== null && kept !== undefined && kept.tcp > 0, JSON.stringify(kept));
  assert.doesNotMatch(stderr, /moving the data streams/);
});

test("a host listening for TCP only is not tried over QUIC mid-pull", { skip }, async (t) => {
  const pulled = await pullThroughShapedPath(
    t,
    { tcp: { delayMs: 10, bytesPerSecond: 4 * MiB }, udp: { delayMs: 10 } },
    ["tcp"],
  );
  if (pulled === undefined) return; // skipped
  const { summary } = pulled;
  assert.deepEqual(summary.streamPool?.transportTrials, []);
  assert.equal(summary.streamPool?.bytesByTransport.quic, 0);
});
