/**
 * Hole punching for QUIC in the NAT lab, with real processes: the client and host reflect their
 * QUIC sockets at a reflector on the public network, swap the addresses (through the test, as a
 * relayed control connection would), the host punches from its QUIC listener's socket and the
 * client dials QUIC through both NATs, the host's fingerprint pinned. Through two cone NATs it
 * gets through; through a symmetric NAT it cannot (the port the reflector saw is not the one the
 * host's NAT sees), and says so.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { nativeUdp } from "../../src/platform/native.js";
import { formatLink } from "../../src/transport/link.js";
import { quicAvailable } from "../../src/transport/quic.js";
import { type NatKind, type NatLab, whyNoNatLab, withNatLab } from "../helpers/nat-lab.js";

const PEER = fileURLToPath(new URL("../helpers/punch-peer.js", import.meta.url));
const REFLECTOR = fileURLToPath(new URL("../helpers/udp-reflector.js", import.meta.url));

/** The JSON lines a child prints, one per call. */
function jsonLines(child: ChildProcess): () => Promise<Record<string, unknown>> {
  if (child.stdout === null) throw new Error("child has no stdout");
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return async () => {
    const line = await lines.next();
    if (line.done === true) throw new Error(`child ended (exit ${child.exitCode})`);
    return JSON.parse(line.value) as Record<string, unknown>;
  };
}

interface PunchRun {
  outcome: { punched: boolean; host?: string; why?: string };
  /** What the host's QUIC listener accepted, as "address:port". */
  accepted: string[];
}

async function punchIn(lab: NatLab, home: string): Promise<PunchRun> {
  const children: ChildProcess[] = [];
  const start = (role: "relay" | "host" | "client", args: string[]) => {
    const child = lab.spawn(role, process.execPath, args, { stdio: ["pipe", "pipe", "inherit"] });
    children.push(child);
    return child;
  };
  try {
    const reflector = start("relay", [REFLECTOR, "0.0.0.0"]);
    const reflectorPort = await new Promise<string>((resolve, reject) => {
      reflector.stdout?.once("data", (data: Buffer) => resolve(data.toString().trim()));
      reflector.once("exit", () => reject(new Error("reflector ended")));
    });
    const host = start("host", [PEER, "host", home]);
    const fromHost = jsonLines(host);
    const { port, fingerprint } = (await fromHost()) as { port: number; fingerprint: string };
    const link = formatLink({
      host: "192.0.2.1", // never dialled: the punch gives the address
      port,
      fingerprint: Buffer.from(fingerprint, "base64url"),
      secret: Buffer.alloc(16, 1),
    });
    const client = start("client", [PEER, "client", link, lab.addresses.relay, reflectorPort]);
    const fromClient = jsonLines(client);
    const accepted: string[] = [];
    let message = await fromClient();
    if ("punch" in message) {
      host.stdin?.write(`${JSON.stringify(message.punch)}\n`);
      let answer = await fromHost();
      client.stdin?.write(`${JSON.stringify(answer)}\n`);
      message = await fromClient();
      host.stdin?.end();
      for (
        answer = await fromHost().catch(() => ({}));
        "accepted" in answer;
        answer = await fromHost().catch(() => ({}))
      )
        accepted.push(String(answer.accepted));
    }
    return { outcome: message.outcome as PunchRun["outcome"], accepted };
  } finally {
    for (const child of children) child.kill();
  }
}

const skip =
  whyNoNatLab() ??
  (quicAvailable ? undefined : "QUIC is not available here") ??
  (nativeUdp === undefined ? "punching needs the native addon (portable mode)" : undefined);

describe("QUIC hole punching", { skip: skip ?? false }, () => {
  const punchThrough = (hostNat: NatKind, clientNat: NatKind) =>
    withNatLab({ hostNat, clientNat }, async (lab) => {
      const home = await mkdtemp(join("/dev/shm", "punch-home-"));
      try {
        return { lab, run: await punchIn(lab, home) };
      } finally {
        await rm(home, { recursive: true, force: true });
      }
    });

  it("gets through two cone NATs: the host accepts QUIC from the client's NAT", async () => {
    const { lab, run } = await punchThrough("cone", "cone");
    assert.equal(run.outcome.punched, true, run.outcome.why);
    assert.equal(run.outcome.host, lab.addresses["host-router"]);
    assert.ok(
      run.accepted.some((from) => from.startsWith(`${lab.addresses["client-router"]}:`)),
      `accepted: ${run.accepted.join(", ")}`,
    );
  });

  it("does not get through a symmetric NAT, and says why", async () => {
    const { run } = await punchThrough("cone", "symmetric");
    assert.equal(run.outcome.punched, false);
    assert.match(run.outcome.why ?? "", /QUIC|timed out|nothing within/i);
  });
});
