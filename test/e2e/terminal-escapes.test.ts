/**
 * A hostile host's names and error texts must not drive the puller's terminal: escape sequences
 * (window title, screen clear, colours), C1 controls, carriage returns and bidi overrides in
 * anything printed from the network come out escaped, in `ls`, in a pull's list of what was not
 * pulled, in remote error messages, and in --json (which must still parse to the real names).
 */
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { entryErrorCodec, errorCodec, MessageType } from "../../src/wire/messages.js";
import { runCli, startHost } from "../helpers/cli.js";
import { onCleanup, tempDir } from "../helpers/context.js";
import { frameOf, startHostileHost } from "../helpers/hostile-host.js";

/** What a terminal would act on: C0 but the line ends, DEL, C1, bidi controls. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for
const TERMINAL_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/** Sets the window title, clears the screen, turns text red, CSI in C1 form, and reverses what follows. */
const EVIL = "evil\u001b]0;owned\u0007\u001b[2J\u001b[31m\u009b1m\r\u202egpj.exe";

function assertNoControls(text: string, where: string): void {
  const found = TERMINAL_CONTROL.exec(text);
  assert.equal(
    found,
    null,
    `${where} printed U+${found?.[0].charCodeAt(0).toString(16)} raw: ${JSON.stringify(text)}`,
  );
}

test("a host's file names with escape sequences print escaped in ls, the not-pulled list and --json", async (t) => {
  const base = await tempDir(t, "escapes-names");
  const share = join(base, "share");
  await mkdir(share);
  await writeFile(join(share, `${EVIL}.txt`), "payload\n");
  const host = await startHost(share, { home: join(base, "host-home") });
  onCleanup(t, () => host.stop());
  const env = { TELEPORT_HOME: join(base, "client-home") };

  const listing = await runCli(["ls", host.link], env);
  assert.equal(listing.code, 0, listing.stderr);
  assertNoControls(listing.stdout, "ls");
  assert.match(listing.stdout, /evil\\x1b\]0;owned\\x07/);

  const listingJson = await runCli(["ls", host.link, "--json"], env);
  assertNoControls(listingJson.stdout, "ls --json");
  const names = listingJson.stdout
    .trim()
    .split("\n")
    .map((line) => (JSON.parse(line) as { path: string }).path);
  assert.ok(names.includes(`${EVIL}.txt`), "--json still carries the real name");
});

test("names and texts in a host's entry errors print escaped in the not-pulled list and --json", async (t) => {
  const base = await tempDir(t, "escapes-entry-errors");
  const hostile = await startHostileHost(join(base, "host-home"), [
    frameOf(MessageType.ENTRY_ERROR, entryErrorCodec, {
      path: EVIL,
      code: "TELEPORT_ERR_PERMISSION",
      message: `denied ${EVIL}`,
    }),
  ]);
  onCleanup(t, () => hostile.close());
  const env = { TELEPORT_HOME: join(base, "client-home") };
  const pull = await runCli(["pull", hostile.link, join(base, "dest"), "--no-progress"], env);
  assert.equal(pull.code, 1, pull.stderr);
  assert.match(pull.stderr, /not pulled: "evil\\x1b\]0;owned/);
  assertNoControls(pull.stderr, "pull's not-pulled list");

  const pullJson = await runCli(["pull", hostile.link, join(base, "dest-json"), "--json"], env);
  assertNoControls(pullJson.stdout, "pull --json");
  assertNoControls(pullJson.stderr, "pull --json's stderr");
  const summary = JSON.parse(pullJson.stdout) as { failures: { path: string }[] };
  assert.deepEqual(
    summary.failures.map((failure) => failure.path),
    [EVIL],
    "--json still carries the real name",
  );
});

test("a host's error text with escape sequences prints escaped", async (t) => {
  const base = await tempDir(t, "escapes-error");
  const hostile = await startHostileHost(join(base, "host-home"), [
    frameOf(MessageType.ERROR, errorCodec, { code: "TELEPORT_ERR_IO", message: `disk said ${EVIL}` }),
  ]);
  onCleanup(t, () => hostile.close());
  const pull = await runCli(["pull", hostile.link, join(base, "dest"), "--no-progress", "--retries", "0"], {
    TELEPORT_HOME: join(base, "client-home"),
  });
  assert.equal(pull.code, 1, pull.stderr);
  assert.match(pull.stderr, /disk said evil\\x1b\]0;owned/);
  assertNoControls(pull.stderr, "the error line");
});
