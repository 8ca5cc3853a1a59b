/**
 * Under load no client dies: 32 `teleport pull` processes at once of one file from one host,
 * five runs in a row, every client exits 0 with the file identical, none killed by a signal.
 * Three of the runs are forced onto auto's fallback from TCP to QUIC, the path on which clients
 * used to abort with heap corruption: their stream threads ended while the QUIC binding still had
 * calls pending, and Node freed what the binding then wrote to (quic-binding.ts, `pending`).
 *
 * The fallback runs pull from a host listening for QUIC only, so TCP to its port is refused (as a
 * network that blocks TCP does) and every client falls back at once; the other runs pull from a
 * `teleport host` over TCP, where a connected TCP that is merely slow must not be left for QUIC
 * (only a connect that did not complete may be).
 *
 * The file is 4 MiB: about 55 chunks, enough for each pull to spread batches over several data
 * streams and stream threads (what the crash needed), while 32 clients x 5 runs stay near a
 * minute on two cores; the size of the file did not matter to the crash, the number of pulls did.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { PullSummary } from "../../src/client/pull.js";
import { quicAvailable } from "../../src/transport/quic.js";
import { type CliResult, runCli } from "../helpers/cli.js";
import { hostInProcess, hostWithCli, makeShare } from "../helpers/share.js";
import { MiB, pseudoRandomBytes } from "../helpers/tree.js";

const skip = quicAvailable ? false : "QUIC's native binding is not installed on this platform";

const CLIENTS = 32;
const FILE_BYTES = 4 * MiB;
type Run = "tcp" | "quic-fallback";
const RUNS: readonly Run[] = ["quic-fallback", "tcp", "quic-fallback", "tcp", "quic-fallback"];
/** A pull alone takes well under a second; 32 at once on a loaded two-core machine, far longer. */
const PULL_TIMEOUT_MS = 180_000;

const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

function checkClient(run: Run, label: string, result: CliResult): void {
  const said = `${label}: exit ${result.code ?? result.signal}; stderr: ${result.stderr}`;
  assert.equal(result.signal, null, said);
  assert.equal(result.code, 0, said);
  const summary = JSON.parse(result.stdout) as PullSummary;
  if (run === "quic-fallback") {
    assert.equal(summary.transport, "quic", said);
    assert.match(result.stderr, /TCP to .* failed .*; using QUIC/, said);
  } else if (summary.transport !== "tcp") {
    // A busy host answers TLS late, but a TCP its kernel connected is no reason for QUIC: a client
    // here leaves TCP only when the connect itself did not complete (32 clients at once can
    // overflow the busy host's accept queue, and a dropped SYN is retried after a second).
    assert.match(result.stderr, /TCP to .* did not connect within \d+ ms; using QUIC/, said);
  }
}

test("32 concurrent CLI pulls of one file, 5 runs in a row, TCP and forced onto QUIC: every client exits 0 with the file identical", {
  skip,
  timeout: RUNS.length * PULL_TIMEOUT_MS,
}, async (t) => {
  const content = pseudoRandomBytes(FILE_BYTES, "stress");
  const { base, share } = await makeShare(t, "stress-pulls", { "big.bin": content });
  const tcpHost = await hostWithCli(t, { base, share });
  const quicOnlyHost = await hostInProcess(t, { base: join(base, "quic-only"), share, transports: ["quic"] });
  const expected = sha256(content);

  for (const [index, run] of RUNS.entries()) {
    const runDir = join(base, `run-${index + 1}`);
    const link = run === "tcp" ? tcpHost.link : quicOnlyHost.url;
    const clients = Array.from({ length: CLIENTS }, async (_, client) => {
      const dest = join(runDir, `dest-${client}`);
      // A home of its own: the client's index knows no earlier copy, so every byte crosses the network.
      const env = { TELEPORT_HOME: join(runDir, `home-${client}`) };
      const result = await runCli(["pull", link, dest, "--json"], env, { timeoutMs: PULL_TIMEOUT_MS });
      return { label: `run ${index + 1} (${run}), client ${client + 1}`, dest, result };
    });
    for (const { label, dest, result } of await Promise.all(clients)) {
      checkClient(run, label, result);
      assert.equal(sha256(await readFile(join(dest, "big.bin"))), expected, `${label}: the file differs`);
    }
    await rm(runDir, { recursive: true, force: true });
  }
});
