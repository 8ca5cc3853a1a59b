/**
 * Join codes across two NATs (the NAT lab, test/helpers/nat-lab.ts): `teleport relay` on the
 * public network, `send --relay` behind a cone NAT A, `receive --relay` behind a symmetric NAT B.
 * The code meets at the relay's mailbox, and the pull goes through the relay (the link `send`
 * seals names it). Then a code used twice is refused, and a wrong code burns its offer.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type RunningCli, spawnCli } from "../helpers/cli.js";
import { waitFor } from "../helpers/context.js";
import { type NatLab, whyNoNatLab, withNatLab } from "../helpers/nat-lab.js";
import { MiB, writeRandomFile } from "../helpers/tree.js";

function sendIn(
  lab: NatLab,
  scratch: string,
  share: string,
  relay: string,
): { send: RunningCli; code: Promise<string> } {
  const send = spawnCli(
    ["send", share, "--relay", relay, "--no-lan"],
    { TELEPORT_HOME: join(scratch, "sender-home") },
    lab.wrapper("host"),
  );
  const code = waitFor(() => /^(.+)\n/.exec(send.stdout())?.[1], { what: "the code", timeoutMs: 30_000 });
  return { send, code };
}

function receiveIn(lab: NatLab, scratch: string, code: string, dest: string, relay: string): RunningCli {
  return spawnCli(
    ["receive", code, dest, "--relay", relay, "--no-lan", "--json"],
    { TELEPORT_HOME: join(scratch, "receiver-home") },
    lab.wrapper("client"),
  );
}

describe("join codes across NATs", { skip: whyNoNatLab() ?? false }, () => {
  it("send behind NAT A, receive behind a symmetric NAT B: through the relay; once; a wrong code burns", async () => {
    await withNatLab({ hostNat: "cone", clientNat: "symmetric" }, async (lab) => {
      const scratch = await mkdtemp(join("/dev/shm", "codes-nat-"));
      const running: RunningCli[] = [];
      try {
        const share = join(scratch, "share");
        await mkdir(share);
        await writeRandomFile(join(share, "payload.bin"), 4 * MiB);
        const relay = spawnCli(
          ["relay", "--port", "0", "--bind", lab.addresses.relay],
          { TELEPORT_HOME: join(scratch, "relay-home") },
          lab.wrapper("relay"),
        );
        running.push(relay);
        const address = await waitFor(() => relay.stdout().split("\n")[0]?.trim() || undefined, {
          what: "the relay's address",
          timeoutMs: 20_000,
        });

        const first = sendIn(lab, scratch, share, address);
        running.push(first.send);
        const code = await first.code;
        const received = await receiveIn(lab, scratch, code, join(scratch, "dest"), address).result;
        assert.equal(received.code, 0, received.stderr);
        const summary = JSON.parse(received.stdout.trim());
        assert.equal(summary.path, "relay", JSON.stringify(summary.bytesByPath));
        assert.deepEqual(
          await readFile(join(scratch, "dest", "payload.bin")),
          await readFile(join(share, "payload.bin")),
        );
        assert.equal((await first.send.result).code, 0);
        const again = await receiveIn(lab, scratch, code, join(scratch, "again"), address).result;
        assert.equal(again.code, 1);
        assert.match(again.stderr, /TELEPORT_ERR_CODE_USED/);

        const second = sendIn(lab, scratch, share, address);
        running.push(second.send);
        const [nameplate, odd, even] = (await second.code).split("-");
        const wrong = `${nameplate}-${odd === "adroitness" ? "adviser" : "adroitness"}-${even}`;
        const guessed = await receiveIn(lab, scratch, wrong, join(scratch, "guess"), address).result;
        assert.equal(guessed.code, 1);
        assert.match(guessed.stderr, /TELEPORT_ERR_CODE_WRONG/);
        const burnt = await second.send.result;
        assert.equal(burnt.code, 1);
        assert.match(burnt.stderr, /TELEPORT_ERR_CODE_WRONG/);
      } finally {
        for (const cli of running) cli.process.kill("SIGKILL");
        await Promise.all(running.map((cli) => cli.result));
        await rm(scratch, { recursive: true, force: true });
      }
    });
  });
});
