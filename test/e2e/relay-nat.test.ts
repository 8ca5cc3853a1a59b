/**
 * The relay across real NATs (the NAT lab, test/helpers/nat-lab.ts): `teleport relay` on the
 * public network, `teleport host --relay` behind NAT A, `teleport pull --json` behind a
 * symmetric NAT B (no hole can be punched, so the relay carries the pull). The relay is killed
 * mid-pull and started again on its port: the host registers again through its NAT, and the
 * pull resumes and completes on the relay, saying so in `path` and `bytesByPath`.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type RunningCli, spawnCli } from "../helpers/cli.js";
import { waitFor } from "../helpers/context.js";
import { type NatLab, whyNoNatLab, withNatLab } from "../helpers/nat-lab.js";
import { MiB, writeRandomFile } from "../helpers/tree.js";

const FILE_BYTES = 16 * MiB;

function startRelayIn(lab: NatLab, scratch: string, port: number): RunningCli {
  return spawnCli(
    ["relay", "--port", String(port), "--bind", lab.addresses.relay],
    { TELEPORT_HOME: join(scratch, `relay-home-${port}`) },
    lab.wrapper("relay"),
  );
}

async function bytesIn(folder: string): Promise<number> {
  let bytes = 0;
  // A part file may be renamed into place between the listing and its stat.
  for (const name of await readdir(folder).catch(() => []))
    bytes += (await stat(join(folder, name)).catch(() => ({ size: 0 }))).size;
  return bytes;
}

describe("relay across NATs", { skip: whyNoNatLab() ?? false }, () => {
  it("a relay killed mid-pull and started again on its port: the pull resumes through it", async () => {
    await withNatLab({ hostNat: "cone", clientNat: "symmetric" }, async (lab) => {
      const scratch = await mkdtemp(join("/dev/shm", "relay-nat-"));
      const running: RunningCli[] = [];
      try {
        const share = join(scratch, "share");
        const dest = join(scratch, "dest");
        await mkdir(share);
        await writeRandomFile(join(share, "payload.bin"), FILE_BYTES);
        const relay = startRelayIn(lab, scratch, 0);
        running.push(relay);
        const address = await waitFor(() => relay.stdout().split("\n")[0]?.trim() || undefined, {
          what: "the relay's address",
          timeoutMs: 20_000,
        });
        const linkFile = join(scratch, "link");
        const host = spawnCli(
          ["host", share, "--port", "0", "--relay", address, "--link-file", linkFile],
          { TELEPORT_HOME: join(scratch, "host-home") },
          lab.wrapper("host"),
        );
        running.push(host);
        const link = await waitFor(
          async () => (await readFile(linkFile, "utf8").catch(() => "")).split("\n")[0] || undefined,
          { what: "the host's link", timeoutMs: 20_000 },
        );
        const pull = spawnCli(
          ["pull", link, dest, "--json", "--bwlimit", "4M"],
          { TELEPORT_HOME: join(scratch, "client-home") },
          lab.wrapper("client"),
        );
        running.push(pull);
        await waitFor(async () => (await bytesIn(dest)) >= 2 * MiB, {
          what: "the pull to be under way",
          timeoutMs: 30_000,
        });
        relay.process.kill("SIGKILL");
        await relay.result;
        running.push(startRelayIn(lab, scratch, Number(address.split(":").at(-1))));
        const result = await pull.result;
        assert.equal(result.code, 0, result.stderr);
        const summary = JSON.parse(result.stdout.trim());
        assert.ok(summary.attempts >= 2, `attempts: ${summary.attempts}`);
        assert.equal(summary.path, "relay");
        assert.equal(summary.bytesByPath.direct, 0, JSON.stringify(summary.bytesByPath));
        assert.equal(summary.bytesByPath.punched, 0);
        assert.ok(summary.bytesByPath.relay > 0);
        assert.match(host.stderr(), /registered with relay .* again/);
        const same = Buffer.compare(
          await readFile(join(share, "payload.bin")),
          await readFile(join(dest, "payload.bin")),
        );
        assert.equal(same, 0, "the pulled file is byte-identical");
      } finally {
        for (const cli of running) cli.process.kill("SIGKILL");
        await Promise.all(running.map((cli) => cli.result.catch(() => undefined)));
        await rm(scratch, { recursive: true, force: true });
      }
    });
  });
});
