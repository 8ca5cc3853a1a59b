/**
 * A pull that fell back to QUIC must wait for a host that is there but busy, as it waits for a
 * connected TCP. The fallback's short limit (QUIC_FALLBACK_MS) is for a host that is not running
 * (the QUIC binding ignores ICMP, so only silence tells); it used to cover the preamble too,
 * which the host's event loop answers, so under 32 pulls at once some clients gave up on a host
 * that was only busy.
 *
 * The host here listens for QUIC only, in this process; a TCP listener on its port number resets
 * the client's TCP connection (so the client falls back at once) and then keeps this process's
 * event loop busy for BUSY_MS. The QUIC handshake is done meanwhile by the binding's own threads
 * on both sides; the host's answer to the preamble waits for the event loop.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import type { PullSummary } from "../../src/client/pull.js";
import { quicAvailable } from "../../src/transport/quic.js";
import { runCli } from "../helpers/cli.js";
import { onCleanup } from "../helpers/context.js";
import { hostInProcess, makeShare } from "../helpers/share.js";

const skip = quicAvailable ? false : "QUIC's native binding is not installed on this platform";

/** Longer than the 2 s the fallback used to give handshake and preamble together, within the 10 s a step may take. */
const BUSY_MS = 5000;

/** Blocks this thread (the host's event loop) for `ms`, as a host busy with other pulls does. */
function keepEventLoopBusy(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

test("a pull that fell back to QUIC waits for a busy host's answer instead of failing", {
  skip,
}, async (t) => {
  const content = "answered late\n";
  const { base, share, env } = await makeShare(t, "busy-host-fallback", { "a.txt": content });
  const host = await hostInProcess(t, { base, share, transports: ["quic"] });
  let resets = 0;
  const tcp = createServer((socket) => {
    socket.on("error", () => {});
    socket.resetAndDestroy();
    if (resets++ === 0) setImmediate(() => keepEventLoopBusy(BUSY_MS));
  });
  tcp.listen(host.port, "127.0.0.1");
  await once(tcp, "listening");
  onCleanup(t, () => new Promise<void>((resolve) => tcp.close(() => resolve())));

  const dest = join(base, "dest");
  const result = await runCli(["pull", host.url, dest, "--json"], env);
  assert.ok(resets >= 1, "the client tried TCP first, and was reset");
  assert.equal(result.code, 0, result.stderr);
  assert.equal((JSON.parse(result.stdout) as PullSummary).transport, "quic");
  assert.match(result.stderr, /TCP to .* failed .*; using QUIC/);
  assert.equal(await readFile(join(dest, "a.txt"), "utf8"), content);
});
