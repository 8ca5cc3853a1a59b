/**
 * A pull through a relay moves onto a hole punched through both NATs, in the NAT lab with the
 * real CLI: `teleport relay` on the public network, `teleport host --relay` behind NAT A, `teleport
 * pull --json` behind NAT B. Through two cone NATs most chunk bytes come over the punched QUIC path
 * and the files arrive byte for byte; behind a symmetric NAT the punch cannot work, and the pull
 * completes on the relay, saying why at --verbose.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { nativeUdp } from "../../src/platform/native.js";
import { quicAvailable } from "../../src/transport/quic.js";
import { type RunningCli, spawnCli } from "../helpers/cli.js";
import { waitFor } from "../helpers/context.js";
import { type NatKind, type NatLab, whyNoNatLab, withNatLab } from "../helpers/nat-lab.js";
import { MiB, writeRandomFile } from "../helpers/tree.js";

const FILE_BYTES = 24 * MiB;

interface PullOutcome {
  code: number | null;
  stderr: string;
  summary: { bytes: number; streamPool: { bytesByPath: { direct: number; relay: number; punched: number } } };
  same: boolean;
}

async function firstLine(running: RunningCli, what: string): Promise<string> {
  return waitFor(() => (running.stdout().includes("\n") ? running.stdout().split("\n")[0] : undefined), {
    what,
    timeoutMs: 20_000,
  });
}

async function pullThroughRelay(lab: NatLab, scratch: string): Promise<PullOutcome> {
  const share = join(scratch, "share");
  const dest = join(scratch, "dest");
  const linkFile = join(scratch, "link");
  await mkdir(share);
  await writeRandomFile(join(share, "payload.bin"), FILE_BYTES);
  const running: RunningCli[] = [];
  try {
    const relay = spawnCli(
      ["relay", "--port", "0"],
      { TELEPORT_HOME: join(scratch, "relay-home") },
      lab.wrapper("relay"),
    );
    running.push(relay);
    const relayAddress = (await firstLine(relay, "teleport relay to print its address")).trim();
    const host = spawnCli(
      ["host", share, "--port", "0", "--relay", relayAddress, "--link-file", linkFile],
      { TELEPORT_HOME: join(scratch, "host-home") },
      lab.wrapper("host"),
    );
    running.push(host);
    const link = await waitFor(
      async () => (await readFile(linkFile, "utf8").catch(() => "")).split("\n")[0] || undefined,
      {
        what: "teleport host to write its link",
        timeoutMs: 20_000,
      },
    );
    const pull = spawnCli(
      ["pull", link, dest, "--json", "--verbose"],
      { TELEPORT_HOME: join(scratch, "client-home") },
      lab.wrapper("client"),
    );
    const result = await pull.result;
    const same =
      result.code === 0 &&
      Buffer.compare(
        await readFile(join(share, "payload.bin")),
        await readFile(join(dest, "payload.bin")),
      ) === 0;
    return { code: result.code, stderr: result.stderr, summary: JSON.parse(result.stdout || "{}"), same };
  } finally {
    for (const cli of running) cli.process.kill("SIGKILL");
  }
}

function pullIn(hostNat: NatKind, clientNat: NatKind): Promise<PullOutcome> {
  return withNatLab({ hostNat, clientNat }, async (lab) => {
    const scratch = await mkdtemp(join("/dev/shm", "punch-pull-"));
    try {
      return await pullThroughRelay(lab, scratch);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });
}

const skip =
  whyNoNatLab() ??
  (quicAvailable ? undefined : "QUIC is not available here") ??
  (nativeUdp === undefined ? "punching needs the native addon (portable mode)" : undefined);

describe("pull through a relay, then a punched path", { skip: skip ?? false }, () => {
  it("two cone NATs: the data streams move off the relay to the punched path", async () => {
    const outcome = await pullIn("cone", "cone");
    assert.equal(outcome.code, 0, outcome.stderr);
    assert.ok(outcome.same, "the pulled file is byte-identical");
    const { bytesByPath } = outcome.summary.streamPool;
    assert.ok(bytesByPath.punched > FILE_BYTES / 2, `bytes by path: ${JSON.stringify(bytesByPath)}`);
    assert.equal(bytesByPath.direct, 0, "the host's own address was never reachable");
    assert.match(outcome.stderr, /punched a direct QUIC path to the host/);
  });

  it("a symmetric NAT: the pull stays on the relay, completes, and says why at --verbose", async () => {
    const outcome = await pullIn("cone", "symmetric");
    assert.equal(outcome.code, 0, outcome.stderr);
    assert.ok(outcome.same, "the pulled file is byte-identical");
    const { bytesByPath } = outcome.summary.streamPool;
    assert.equal(bytesByPath.punched, 0);
    assert.equal(bytesByPath.relay, outcome.summary.bytes, `bytes by path: ${JSON.stringify(bytesByPath)}`);
    assert.match(outcome.stderr, /staying on the relay: no direct path punched/);
  });
});
