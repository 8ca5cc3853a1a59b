/**
 * The NAT lab itself (bench/nat-lab.sh through test/helpers/nat-lab.ts): each NAT kind maps and
 * filters UDP as its name says, seen from a reflector on the relay's public address.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { describe, it } from "node:test";
import { type NatLab, type NatLabRole, whyNoNatLab, withNatLab } from "../helpers/nat-lab.js";

/** Three UDP sockets; each answers a datagram with the address:port it came from. "poke ADDR:PORT"
 * to the first sends "unsolicited" from the third to ADDR:PORT, then "marker" back from the first. */
const REFLECTOR = `
const dgram = require("node:dgram");
const sockets = [0, 1, 2].map(() => dgram.createSocket("udp4"));
let bound = 0;
for (const s of sockets) s.bind(0, () => { if (++bound === 3) console.log(JSON.stringify(sockets.map((x) => x.address().port))); });
for (const s of sockets) s.on("message", (msg, from) => {
  const text = msg.toString();
  if (text.startsWith("poke ")) {
    const [host, port] = text.slice(5).split(":");
    sockets[2].send("unsolicited", Number(port), host, () => s.send("marker", from.port, from.address));
  } else s.send(from.address + ":" + from.port, from.port, from.address);
});`;

/** From one socket: asks reflector ports 0 and 1 what they see, then pokes; prints what came first. */
const PROBE = `
const dgram = require("node:dgram");
const [relay, p0, p1] = process.argv.slice(1);
const s = dgram.createSocket("udp4");
const inbox = [];
let waiter = null;
s.on("message", (m) => { inbox.push(m.toString()); if (waiter) { const w = waiter; waiter = null; w(); } });
const next = () => inbox.length ? Promise.resolve(inbox.shift()) : new Promise((r) => { waiter = r; }).then(() => inbox.shift());
s.bind(0, async () => {
  s.send("x", Number(p0), relay); const seen0 = await next();
  s.send("x", Number(p1), relay); const seen1 = await next();
  s.send("poke " + seen0, Number(p0), relay); const after = await next();
  console.log(JSON.stringify({ seen0, seen1, firstAfterPoke: after }));
  s.close();
});`;

interface Probe {
  seen0: string;
  seen1: string;
  firstAfterPoke: string;
}

async function probeFrom(lab: NatLab, role: NatLabRole): Promise<Probe> {
  const reflector = lab.spawn("relay", process.execPath, ["-e", REFLECTOR], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    if (reflector.stdout === null) throw new Error("reflector has no stdout");
    const [line] = (await once(reflector.stdout, "data")) as [Buffer];
    const [p0, p1] = JSON.parse(line.toString()) as number[];
    const output = await lab.run(role, process.execPath, [
      "-e",
      PROBE,
      lab.addresses.relay,
      String(p0),
      String(p1),
    ]);
    return JSON.parse(output) as Probe;
  } finally {
    reflector.kill();
  }
}

const skip = whyNoNatLab();

describe("NAT lab", { skip: skip ?? false }, () => {
  it("cone: one public port per socket whatever the destination; unsolicited datagrams dropped", async () => {
    await withNatLab({ hostNat: "cone", clientNat: "symmetric" }, async (lab) => {
      const probe = await probeFrom(lab, "host");
      assert.match(probe.seen0, new RegExp(`^${lab.addresses["host-router"].replaceAll(".", "\\.")}:\\d+$`));
      assert.equal(probe.seen1, probe.seen0, "endpoint-independent mapping");
      assert.equal(
        probe.firstAfterPoke,
        "marker",
        "a datagram from a port the host never sent to is filtered",
      );
    });
  });

  it("symmetric: each destination gets its own public port", async () => {
    await withNatLab({ hostNat: "cone", clientNat: "symmetric" }, async (lab) => {
      const probe = await probeFrom(lab, "client");
      assert.match(
        probe.seen0,
        new RegExp(`^${lab.addresses["client-router"].replaceAll(".", "\\.")}:\\d+$`),
      );
      assert.notEqual(probe.seen1, probe.seen0, "endpoint-dependent mapping");
    });
  });

  it("full-cone: unsolicited datagrams to the public port reach the host", async () => {
    await withNatLab({ hostNat: "full-cone", clientNat: "cone" }, async (lab) => {
      const probe = await probeFrom(lab, "host");
      assert.equal(probe.seen1, probe.seen0);
      assert.equal(probe.firstAfterPoke, "unsolicited");
    });
  });

  it("close() removes every namespace of the lab", async () => {
    const namespaces = await withNatLab({ hostNat: "cone", clientNat: "cone" }, async (lab) =>
      Object.values(lab.namespaces),
    );
    const { execFileSync } = await import("node:child_process");
    const listed = execFileSync("ip", ["netns", "list"]).toString();
    for (const name of namespaces) assert.ok(!listed.includes(name), `${name} left behind`);
  });
});
