/**
 * Pulls through a real `teleport relay`, end to end through the CLI: the host's own address
 * does not answer (its link points at a loopback port that resets every connection and drops
 * every datagram), so the only way in is the relay the link names. The relay sees only
 * ciphertext; a relay that alters, replays or reorders what it splices is caught by TLS and
 * nothing wrong is written; a relay killed mid-pull and started again on its port takes the
 * host back, and the pull resumes; a relay's bounds refuse a host past them.
 */
import assert from "node:assert/strict";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { parseLink } from "../../src/transport/link.js";
import { type HostProcess, runCli, spawnCli, startHost } from "../helpers/cli.js";
import { onCleanup, tempDir, waitFor } from "../helpers/context.js";
import { holdPort, linkToPort } from "../helpers/ports.js";
import { type RelayProcess, startRelay } from "../helpers/relay.js";
import { MiB, pseudoRandomBytes } from "../helpers/tree.js";

const FILE_BYTES = 8 * MiB;

interface RelayedShare {
  relay: RelayProcess;
  host: HostProcess;
  /** The host's link, its own address replaced by a port where nothing answers. */
  link: string;
  share: string;
  content: Buffer;
}

/** A relay, a host registered with it, and a link whose direct address is dead. */
async function relayedShare(
  t: TestContext,
  relayOptions: { env?: Record<string, string>; args?: string[]; port?: number } = {},
): Promise<RelayedShare> {
  const share = await tempDir(t, "relay-share");
  const content = pseudoRandomBytes(FILE_BYTES, `relay-${t.name}`);
  await writeFile(join(share, "big.bin"), content);
  await writeFile(join(share, "note.txt"), "through the relay\n");
  const relay = await startRelay(t, { home: await tempDir(t, "relay-home"), ...relayOptions });
  const host = await startHost(share, {
    home: await tempDir(t, "relay-host"),
    args: ["--relay", relay.address],
  });
  onCleanup(t, () => host.stop());
  const dead = await holdPort(t);
  return { relay, host, link: linkToPort(host.link, dead.port), share, content };
}

async function pull(t: TestContext, link: string, args: string[] = []) {
  const dest = await tempDir(t, "relay-dest");
  const result = await runCli(
    ["pull", link, dest, "--json", ...args],
    { TELEPORT_HOME: await tempDir(t, "relay-client") },
    { timeoutMs: 90_000 },
  );
  return { dest, result, summary: JSON.parse(result.stdout.trim().split("\n").at(-1) ?? "{}") };
}

/** Whether `needle` occurs in `haystack`, for samples of `needle` at several offsets. */
function anySampleIn(haystack: Buffer, needle: Buffer, sampleBytes = 32): boolean {
  for (
    let at = 0;
    at + sampleBytes <= needle.length;
    at += Math.max(sampleBytes, Math.floor(needle.length / 64))
  )
    if (haystack.includes(needle.subarray(at, at + sampleBytes))) return true;
  return false;
}

describe("relay", () => {
  it("carries a pull whose host does not answer directly, and sees only ciphertext", async (t) => {
    const captureFile = join(await tempDir(t, "relay-capture"), "spliced.bin");
    const { link, content, relay } = await relayedShare(t, { env: { TELEPORT_RELAY_CAPTURE: captureFile } });
    assert.equal(parseLink(link).relays?.[0]?.port, relay.port, "the link names the relay");
    const { dest, result, summary } = await pull(t, link);
    assert.equal(result.code, 0, result.stderr);
    assert.ok((await readFile(join(dest, "big.bin"))).equals(content));
    assert.equal(summary.transport, "relay");
    assert.equal(summary.path, "relay");
    assert.equal(summary.bytesByPath.direct, 0);
    assert.ok(summary.bytesByPath.relay >= FILE_BYTES, JSON.stringify(summary.bytesByPath));
    assert.equal(summary.bytesByPath.punched, 0);

    const spliced = await readFile(captureFile);
    assert.ok(spliced.length >= FILE_BYTES, `the relay carried ${spliced.length} bytes`);
    assert.ok(!anySampleIn(spliced, content), "no piece of the file crosses the relay in the clear");
    assert.ok(!spliced.includes(Buffer.from("through the relay")), "nor the small file");
    const secret = parseLink(link).secret;
    assert.ok(!spliced.includes(secret), "the link's secret never crosses the relay");
    assert.ok(!spliced.includes(Buffer.from(secret.toString("base64url"))), "not even as text");
  });

  for (const fault of ["alter", "replay", "reorder"]) {
    it(`a relay that ${fault}s what it splices is caught, and nothing wrong is written`, async (t) => {
      // Every spliced connection is tampered with once it has carried 300 kB toward the client.
      const { link } = await relayedShare(t, { env: { TELEPORT_RELAY_FAULT: `${fault}:300000` } });
      const { dest, result, summary } = await pull(t, link, ["--retries", "1"]);
      assert.equal(result.code, 1, result.stderr);
      assert.equal(summary.error?.code, "TELEPORT_ERR_TAMPERED", result.stdout);
      const written = await readFile(join(dest, "big.bin")).catch(() => undefined);
      assert.equal(written, undefined, "no file at its final path");
    });
  }

  it("recovers from a relay that tampers with the first connections, resuming on new ones", async (t) => {
    const { link, content, relay } = await relayedShare(t, { env: { TELEPORT_RELAY_FAULT: "alter:300000:2" } });
    const { dest, result, summary } = await pull(t, link);
    assert.equal(result.code, 0, result.stderr);
    assert.match(relay.stderr(), /injecting alter/);
    // The tampered connection was dropped: a data stream lost (the pool reopens it), or an attempt.
    const lost = (summary.streamPool?.streamsLost ?? 0) + summary.attempts - 1;
    assert.ok(lost >= 1, JSON.stringify({ attempts: summary.attempts, pool: summary.streamPool }));
    assert.ok((await readFile(join(dest, "big.bin"))).equals(content));
  });

  it("resumes a pull once a relay killed mid-pull is back on its port", async (t) => {
    const { link, content, relay } = await relayedShare(t);
    const dest = await tempDir(t, "relay-dest");
    const pulling = spawnCli(["pull", link, dest, "--json", "--bwlimit", "2M"], {
      TELEPORT_HOME: await tempDir(t, "relay-client"),
    });
    onCleanup(t, () => pulling.process.kill("SIGKILL"));
    await waitFor(
      async () => {
        const { readdir } = await import("node:fs/promises");
        let bytes = 0;
        for (const name of await readdir(dest)) bytes += (await stat(join(dest, name))).size;
        return bytes >= 1 * MiB;
      },
      { what: "the pull to be under way", timeoutMs: 30_000 },
    );
    await relay.kill();
    await startRelay(t, { home: await tempDir(t, "relay-home-again"), port: relay.port });
    const result = await pulling.result;
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout.trim());
    assert.ok(summary.attempts >= 2, `attempts: ${summary.attempts}`);
    assert.equal(summary.path, "relay");
    assert.ok((await readFile(join(dest, "big.bin"))).equals(content));
  });

  it("refuses a host past its bounds, and says why", async (t) => {
    const relay = await startRelay(t, { home: await tempDir(t, "relay-home"), args: ["--max-hosts", "1"] });
    const first = await startHost(await tempDir(t, "relay-share-1"), {
      home: await tempDir(t, "relay-host-1"),
      args: ["--relay", relay.address],
    });
    onCleanup(t, () => first.stop());
    const second = await startHost(await tempDir(t, "relay-share-2"), {
      home: await tempDir(t, "relay-host-2"),
      args: ["--relay", relay.address],
    });
    onCleanup(t, () => second.stop());
    await waitFor(() => /refused: full: the relay holds 1 hosts/.test(second.stderr()), {
      what: "the second host to be told the relay is full",
    });
    const { result } = await pull(t, linkToPort(second.link, (await holdPort(t)).port), ["--retries", "0"]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /TELEPORT_ERR_RELAY_REFUSED|unknown-host/);
  });
});
