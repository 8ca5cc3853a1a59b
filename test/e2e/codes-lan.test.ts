/**
 * Join codes on a LAN with no relay: two network namespaces on one bridge, the sender in one and
 * the receiver in the other; `receive CODE` finds the sender by mDNS, as LocalSend does. Needs
 * root and iproute2 (skipped with a message otherwise). Every name is tp + a random id, removed
 * when the test ends.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { type CliEnv, type CliResult, type RunningCli, spawnCli } from "../helpers/cli.js";
import { onCleanup, waitFor } from "../helpers/context.js";
import { makeShare } from "../helpers/share.js";

function canMakeNamespaces(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root to make network namespaces";
  try {
    execFileSync("ip", ["-V"], { stdio: "ignore" });
  } catch {
    return "needs iproute2 (ip)";
  }
  return undefined;
}

const skip = canMakeNamespaces();

/** Two namespaces on one bridge, each with an address and a default route (multicast follows it). */
function twoHostLan(t: TestContext): { sender: string; receiver: string } {
  const id = randomBytes(3).toString("hex");
  const [sender, receiver, bridge] = [`tp${id}s`, `tp${id}r`, `tp${id}br`];
  const ip = (...args: string[]) => execFileSync("ip", args, { stdio: "pipe" });
  onCleanup(t, () => {
    for (const args of [
      ["netns", "del", sender],
      ["netns", "del", receiver],
      ["link", "del", bridge],
    ]) {
      try {
        ip(...args);
      } catch {}
    }
  });
  ip("link", "add", bridge, "type", "bridge");
  ip("link", "set", bridge, "up");
  [sender, receiver].forEach((ns, i) => {
    ip("netns", "add", ns);
    ip("link", "add", `${ns}v`, "type", "veth", "peer", "name", `${ns}p`);
    ip("link", "set", `${ns}p`, "master", bridge, "up");
    ip("link", "set", `${ns}v`, "netns", ns);
    ip("-n", ns, "addr", "add", `10.77.0.${i + 1}/24`, "dev", `${ns}v`);
    ip("-n", ns, "link", "set", `${ns}v`, "up");
    ip("-n", ns, "link", "set", "lo", "up");
    ip("-n", ns, "route", "add", "default", "via", "10.77.0.254", "dev", `${ns}v`);
  });
  return { sender, receiver };
}

function inNamespace(ns: string): string[] {
  return ["ip", "netns", "exec", ns];
}

async function startSend(
  t: TestContext,
  ns: string,
  path: string,
  env: CliEnv,
): Promise<{ send: RunningCli; code: string }> {
  const send = spawnCli(["send", path], env, inNamespace(ns));
  onCleanup(t, () => {
    send.process.kill("SIGKILL");
  });
  const code = await waitFor(() => /^(.+)\n/.exec(send.stdout())?.[1], { what: "the code on stdout" });
  return { send, code };
}

function receive(ns: string, args: string[], env: CliEnv): Promise<CliResult> {
  return spawnCli(["receive", ...args], env, inNamespace(ns)).result;
}

test("receive finds the sender on the LAN by mDNS, with no relay", { skip }, async (t) => {
  const lan = twoHostLan(t);
  const data = randomBytes(1_500_000);
  const { base, share, env } = await makeShare(t, "codes-lan", { "a.txt": "over the lan", "b.bin": data });
  const { send, code } = await startSend(t, lan.sender, share, { TELEPORT_HOME: join(base, "sender-home") });
  const dest = join(base, "dest");
  const received = await receive(lan.receiver, [code, dest, "--json"], env);
  assert.equal(received.code, 0, received.stderr);
  assert.equal(await readFile(join(dest, "a.txt"), "utf8"), "over the lan");
  assert.deepEqual(await readFile(join(dest, "b.bin")), data);
  const sent = await send.result;
  assert.equal(sent.code, 0, sent.stderr);
  // The host saw the receiver's own LAN address: the bytes went across the bridge.
  assert.match(sent.stderr, /10\.77\.0\.2 pulled/);
});

test("receive tries the relay and the LAN at once: a relay that cannot be reached does not stop the LAN", {
  skip,
}, async (t) => {
  const lan = twoHostLan(t);
  const { base, share, env } = await makeShare(t, "codes-lan-race", { "a.txt": "either way" });
  const { send, code } = await startSend(t, lan.sender, share, { TELEPORT_HOME: join(base, "sender-home") });
  const dest = join(base, "dest");
  // Nothing listens in the receiver's namespace: the relay path fails at once.
  const received = await receive(lan.receiver, [code, dest, "--relay", "127.0.0.1:9"], env);
  assert.equal(received.code, 0, received.stderr);
  assert.equal(await readFile(join(dest, "a.txt"), "utf8"), "either way");
  assert.equal((await send.result).code, 0);
});

test("a wrong code on the LAN fails on both sides, and the offer is gone", { skip }, async (t) => {
  const lan = twoHostLan(t);
  const { base, share, env } = await makeShare(t, "codes-lan-wrong", { "a.txt": "not for you" });
  const { send, code } = await startSend(t, lan.sender, share, { TELEPORT_HOME: join(base, "sender-home") });
  const [nameplate, first, second] = code.split("-");
  const wrong = `${nameplate}-${first}-${second === "aardvark" ? "absurd" : "aardvark"}`;
  const guessed = await receive(lan.receiver, [wrong, join(base, "guess")], env);
  assert.equal(guessed.code, 1);
  assert.match(guessed.stderr, /TELEPORT_ERR_CODE_WRONG/);
  const sent = await send.result;
  assert.equal(sent.code, 1);
  assert.match(sent.stderr, /TELEPORT_ERR_CODE_WRONG/);
  const right = await receive(lan.receiver, [code, join(base, "right")], env);
  assert.equal(right.code, 1);
  assert.match(right.stderr, /TELEPORT_ERR_CODE_NOT_FOUND/);
});
