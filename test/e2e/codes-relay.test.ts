/**
 * Join codes through the mailbox of `teleport relay`, by the real CLI: `send` prints a code and waits,
 * `receive CODE` pulls; one use per code, a wrong code burns the offer, an expired code is
 * refused, so is the code of a send stopped by Ctrl-C; without DEST a folder lands under its
 * own name, never over one already there. The LAN is left out (--no-lan) so that these tests meet only at their own mailbox.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { type CliEnv, type RunningCli, runCli, spawnCli } from "../helpers/cli.js";
import { onCleanup, tempDir, waitFor } from "../helpers/context.js";
import { startRelay } from "../helpers/relay.js";
import { makeShare } from "../helpers/share.js";

const CODE = /^([1-9]\d*)-([a-z]+)-([a-z]+)$/;

/** `teleport relay` on loopback, whose mailbox the codes meet at. */
async function relayFor(t: TestContext): Promise<string> {
  const relay = await startRelay(t, { home: join(await tempDir(t, "codes-relay-home"), "home") });
  return relay.address;
}

/** `teleport send` running, and its code once printed. */
async function startSend(
  t: TestContext,
  path: string,
  env: CliEnv,
  extra: string[],
): Promise<{ send: RunningCli; code: string }> {
  const send = spawnCli(["send", path, "--no-lan", ...extra], env);
  onCleanup(t, () => {
    send.process.kill("SIGKILL");
  });
  const code = await waitFor(() => /^(.+)\n/.exec(send.stdout())?.[1], { what: "the code on stdout" });
  return { send, code };
}

test("send through a relay's mailbox: the code pulls the folder, and send exits 0", async (t) => {
  const big = randomBytes(2_000_000);
  const { base, share, env } = await makeShare(t, "codes-relay", { "a.txt": "hello", "sub/big.bin": big });
  const relay = await relayFor(t);
  const senderEnv = { TELEPORT_HOME: join(base, "sender-home") };
  const { send, code } = await startSend(t, share, senderEnv, ["--relay", relay]);
  assert.match(code, CODE);
  const dest = join(base, "dest");
  const received = await runCli(["receive", code, dest, "--relay", relay, "--no-lan", "--json"], env);
  assert.equal(received.code, 0, received.stderr);
  const summary = JSON.parse(received.stdout) as { files: number; bytes: number };
  assert.equal(summary.files, 2);
  assert.equal(await readFile(join(dest, "a.txt"), "utf8"), "hello");
  assert.deepEqual(await readFile(join(dest, "sub/big.bin")), big);
  const sent = await send.result;
  assert.equal(sent.code, 0, sent.stderr);
  assert.doesNotMatch(sent.stderr, /TELEPORT_ERR/);
});

test("a code works once: a second receive of a used code is refused", async (t) => {
  const { base, share, env } = await makeShare(t, "codes-once", { "a.txt": "once" });
  const relay = await relayFor(t);
  const { send, code } = await startSend(t, share, { TELEPORT_HOME: join(base, "sender-home") }, [
    "--relay",
    relay,
  ]);
  const first = await runCli(["receive", code, join(base, "first"), "--relay", relay, "--no-lan"], env);
  assert.equal(first.code, 0, first.stderr);
  assert.equal((await send.result).code, 0);
  const second = await runCli(["receive", code, join(base, "second"), "--relay", relay, "--no-lan"], env);
  assert.equal(second.code, 1);
  assert.match(second.stderr, /TELEPORT_ERR_CODE_USED/);
});

test("a wrong code fails on both sides and burns the offer: the right code is then refused", async (t) => {
  const { base, share, env } = await makeShare(t, "codes-wrong", { "a.txt": "secret" });
  const relay = await relayFor(t);
  const { send, code } = await startSend(t, share, { TELEPORT_HOME: join(base, "sender-home") }, [
    "--relay",
    relay,
  ]);
  const [nameplate, first, second] = CODE.exec(code)?.slice(1) ?? [];
  // Same nameplate and list positions, one word changed: a typo, not a malformed code.
  const wrong = `${nameplate}-${first === "adroitness" ? "adviser" : "adroitness"}-${second}`;
  const guessed = await runCli(["receive", wrong, join(base, "guess"), "--relay", relay, "--no-lan"], env);
  assert.equal(guessed.code, 1);
  assert.match(guessed.stderr, /TELEPORT_ERR_CODE_WRONG/);
  const sent = await send.result;
  assert.equal(sent.code, 1);
  assert.match(sent.stderr, /TELEPORT_ERR_CODE_WRONG/);
  const right = await runCli(["receive", code, join(base, "right"), "--relay", relay, "--no-lan"], env);
  assert.equal(right.code, 1);
  assert.match(right.stderr, /TELEPORT_ERR_CODE_USED/);
  await assert.rejects(readFile(join(base, "right/a.txt")));
});

test("an expired code is refused: send exits with CODE_EXPIRED, and a later receive is told so", async (t) => {
  const { base, share, env } = await makeShare(t, "codes-expire", { "a.txt": "late" });
  const relay = await relayFor(t);
  const { send, code } = await startSend(t, share, { TELEPORT_HOME: join(base, "sender-home") }, [
    "--relay",
    relay,
    "--expire",
    "1s",
  ]);
  const sent = await send.result;
  assert.equal(sent.code, 1);
  assert.match(sent.stderr, /TELEPORT_ERR_CODE_EXPIRED/);
  const late = await runCli(["receive", code, join(base, "late"), "--relay", relay, "--no-lan"], env);
  assert.equal(late.code, 1);
  assert.match(late.stderr, /TELEPORT_ERR_CODE_EXPIRED/);
});

test("a malformed code is a usage error, before any network", async (t) => {
  const { base, env } = await makeShare(t, "codes-usage");
  for (const code of [
    "crossover-clockwork",
    "7-crossover",
    "7-clockwork-crossover",
    "0-crossover-clockwork",
  ]) {
    const result = await runCli(
      ["receive", code, join(base, "dest"), "--no-lan", "--relay", "127.0.0.1:9"],
      env,
    );
    assert.equal(result.code, 2, `${code}: ${result.stderr}`);
    assert.match(result.stderr, /not a join code/);
  }
});

test("receive without DEST lands the folder under its own name here, and never over one already here", async (t) => {
  const { base, share, env } = await makeShare(t, "codes-no-dest", { "a.txt": "named" });
  const relay = await relayFor(t);
  const here = join(base, "here");
  await mkdir(here);
  const inHere = ["env", "-C", here];
  const senderEnv = { TELEPORT_HOME: join(base, "sender-home") };
  const first = await startSend(t, share, senderEnv, ["--relay", relay]);
  const received = await spawnCli(["receive", first.code, "--relay", relay, "--no-lan"], env, inHere).result;
  assert.equal(received.code, 0, received.stderr);
  assert.equal(await readFile(join(here, "share", "a.txt"), "utf8"), "named");
  assert.equal((await first.send.result).code, 0);

  await writeFile(join(share, "a.txt"), "changed");
  const second = await startSend(t, share, senderEnv, ["--relay", relay]);
  const refused = await spawnCli(["receive", second.code, "--relay", relay, "--no-lan"], env, inHere).result;
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /TELEPORT_ERR_USAGE: share is already here: name a DEST/);
  assert.equal(await readFile(join(here, "share", "a.txt"), "utf8"), "named");
});

test("send stopped by Ctrl-C exits 130, says the code no longer works, and the code is refused", async (t) => {
  const { base, share, env } = await makeShare(t, "codes-interrupt", { "a.txt": "never" });
  const relay = await relayFor(t);
  const { send, code } = await startSend(t, share, { TELEPORT_HOME: join(base, "sender-home") }, [
    "--relay",
    relay,
  ]);
  send.process.kill("SIGINT");
  const sent = await send.result;
  assert.equal(sent.code, 130, sent.stderr);
  assert.match(sent.stderr, /TELEPORT_ERR_CANCELLED: send interrupted \(SIGINT\)/);
  assert.match(sent.stderr, /hint: the code no longer works: run `teleport send` again/);
  const late = await runCli(["receive", code, join(base, "dest"), "--relay", relay, "--no-lan"], env);
  assert.equal(late.code, 1);
  assert.match(late.stderr, /TELEPORT_ERR_CODE_EXPIRED/);
  await assert.rejects(readFile(join(base, "dest/a.txt")));
});
