/**
 * `host --map-port` in the NAT lab: behind a router running miniupnpd, the host has its port
 * forwarded (NAT-PMP) and its link names the router's public address, which a client behind
 * another NAT pulls from directly; behind a router that maps nothing, the host says why and its
 * link names its own address.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { spawnCli } from "../helpers/cli.js";
import { waitFor } from "../helpers/context.js";
import { type NatLab, whyNoNatLab, withNatLab } from "../helpers/nat-lab.js";
import { MiB, writeRandomFile } from "../helpers/tree.js";

async function hostWithMapPort(lab: NatLab, scratch: string) {
  const share = join(scratch, "share");
  await mkdir(share);
  await writeRandomFile(join(share, "payload.bin"), 4 * MiB);
  const linkFile = join(scratch, "link");
  const host = spawnCli(
    ["host", share, "--port", "0", "--map-port", "--link-file", linkFile],
    { TELEPORT_HOME: join(scratch, "host-home") },
    lab.wrapper("host"),
  );
  const link = await waitFor(
    async () => (await readFile(linkFile, "utf8").catch(() => "")).split("\n")[0] || undefined,
    { what: "teleport host to write its link", timeoutMs: 20_000 },
  );
  return { host, link, share };
}

async function inScratch<T>(body: (scratch: string) => Promise<T>): Promise<T> {
  const scratch = await mkdtemp(join("/dev/shm", "punch-map-"));
  try {
    return await body(scratch);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

describe("host --map-port", () => {
  it("behind a NAT-PMP router: the link names the forwarded port, and a client pulls from it directly", {
    skip: whyNoNatLab({ upnp: true }) ?? false,
  }, async () => {
    await withNatLab({ hostNat: "cone", clientNat: "cone", upnp: true }, (lab) =>
      inScratch(async (scratch) => {
        const { host, link, share } = await hostWithMapPort(lab, scratch);
        try {
          assert.ok(link.startsWith(`teleport://${lab.addresses["host-router"]}:`), link);
          assert.match(host.stderr(), /the router forwards .* \(NAT-PMP\)/);
          const pull = await spawnCli(
            ["pull", link, join(scratch, "dest"), "--json"],
            { TELEPORT_HOME: join(scratch, "client-home") },
            lab.wrapper("client"),
          ).result;
          assert.equal(pull.code, 0, pull.stderr);
          const summary = JSON.parse(pull.stdout) as {
            bytes: number;
            streamPool: { bytesByPath: { direct: number } };
          };
          assert.ok(summary.streamPool.bytesByPath.direct >= summary.bytes);
          const [sent, got] = await Promise.all([
            readFile(join(share, "payload.bin")),
            readFile(join(scratch, "dest", "payload.bin")),
          ]);
          assert.ok(sent.equals(got), "byte-identical");
        } finally {
          host.process.kill("SIGKILL");
        }
      }),
    );
  });

  it("behind a router that maps nothing: the host says why, and the link names its own address", {
    skip: whyNoNatLab() ?? false,
  }, async () => {
    await withNatLab({ hostNat: "cone", clientNat: "cone" }, (lab) =>
      inScratch(async (scratch) => {
        const { host, link } = await hostWithMapPort(lab, scratch);
        try {
          assert.ok(link.startsWith(`teleport://${lab.addresses.host}:`), link);
          assert.match(host.stderr(), /--map-port: the router mapped no port \(NAT-PMP: .*; UPnP: /);
        } finally {
          host.process.kill("SIGKILL");
        }
      }),
    );
  });
});
