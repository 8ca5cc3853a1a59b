/**
 * A host whose TELEPORT_HOME (its private key, master secret and chunk index) lies inside the
 * folder it shares never serves it: not in a pull, a listing or a read, not by another name (a
 * symlink in the share), not on any transport; an upload never writes into it; and a share of
 * the home folder itself, or of anything inside it, is refused before the host starts.
 */
import assert from "node:assert/strict";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { TeleportClient } from "../../src/client/client.js";
import { ErrorCode } from "../../src/errors.js";
import type { TransportChoice } from "../../src/transport/transport.js";
import {
  type CliEnv,
  type CliResult,
  runCli,
  STACK_TRACE_LINE,
  spawnCli,
  startHost,
} from "../helpers/cli.js";
import { onCleanup, waitFor } from "../helpers/context.js";
import { makeShare } from "../helpers/share.js";
import { isAbsent } from "../helpers/tree.js";

const KEY = "identity/host-key.pem";

interface HomeInShare {
  base: string;
  share: string;
  /** The host's TELEPORT_HOME, inside the share. */
  home: string;
  /** Its path in the share, as a client names it. */
  homePath: string;
  link: string;
  writeLink: string | undefined;
  env: CliEnv;
}

/** A share holding a file and the host's own home at `homePath`, hosted by the CLI. */
async function hostWithHomeInside(
  t: TestContext,
  label: string,
  homePath: string,
  args: string[] = [],
): Promise<HomeInShare> {
  const { base, share, env } = await makeShare(t, label, { "readme.txt": "shared\n" });
  const home = join(share, homePath);
  const host = await startHost(share, { home, linkFile: join(base, "link.txt"), args });
  onCleanup(t, () => host.stop());
  // A symlink in the share to the home folder: another name for it, followed by requests.
  await symlink(homePath, join(share, "to-home"));
  return { base, share, home, homePath, link: host.link, writeLink: host.writeLink, env };
}

function assertNotFound(result: CliResult, what: string): void {
  assert.notEqual(result.code, 0, `${what} succeeded: ${result.stdout}`);
  assert.match(result.stderr, new RegExp(ErrorCode.NOT_FOUND), what);
  assert.doesNotMatch(result.stderr, STACK_TRACE_LINE);
}

/** Every way a read-link client could reach the home: none gets a byte of it. */
async function assertHomeNotServed(fixture: HomeInShare, transport: string): Promise<void> {
  const { base, link, env, homePath } = fixture;
  const dest = join(base, `dest-${transport}`);
  const pulled = await runCli(["pull", link, dest, "--transport", transport], env, { timeoutMs: 60_000 });
  assert.equal(pulled.code, 0, pulled.stderr);
  assert.equal(await readFile(join(dest, "readme.txt"), "utf8"), "shared\n");
  assert.ok(await isAbsent(join(dest, homePath)), `the pull fetched ${homePath}`);
  assert.ok(await isAbsent(join(dest, "to-home", KEY)), "the pull fetched the key through the symlink");

  const listed = await runCli(["ls", link, "-r", "--json"], env);
  assert.equal(listed.code, 0, listed.stderr);
  const paths = listed.stdout
    .trim()
    .split("\n")
    .map((line) => (JSON.parse(line) as { path: string }).path);
  assert.ok(paths.includes("readme.txt"), listed.stdout);
  assert.ok(!paths.some((path) => path.includes("identity") || path.includes("index.db")), listed.stdout);

  for (const name of [homePath, "to-home"]) {
    assertNotFound(await runCli(["ls", link, name], env), `ls ${name}`);
    assertNotFound(await runCli(["cat", link, `${name}/${KEY}`], env), `cat ${name}/${KEY}`);
    const into = join(base, `path-${transport}`);
    const byPath = await runCli(
      ["pull", link, into, "--path", `${name}/identity`, "--transport", transport],
      env,
    );
    assertNotFound(byPath, `pull --path ${name}/identity`);
    assert.ok(await isAbsent(join(into, "host-key.pem")));
  }
  // `cat` stats first; a client asking for the bytes straight away (READ_RANGE, the same open as
  // GET_CHUNKS and deltas) is refused too.
  const client = await TeleportClient.connect(link, { transport: transport as TransportChoice });
  try {
    for (const [name, code] of [
      [homePath, ErrorCode.NOT_FOUND],
      // A symlink on the way: an escape where openat2 refuses any (the addon), else followed to
      // the state folder and refused there (TELEPORT_NATIVE=0).
      ["to-home", `${ErrorCode.PATH_ESCAPE}|${ErrorCode.NOT_FOUND}`],
    ] as const) {
      await assert.rejects(async () => {
        for await (const _piece of client.readRange(`${name}/${KEY}`, 0, 64));
      }, new RegExp(code));
    }
  } finally {
    await client.close();
  }
}

test("a home at the top of the share is never served, over TCP (host threads) and QUIC", async (t) => {
  const fixture = await hostWithHomeInside(t, "home-top", ".teleport");
  await assertHomeNotServed(fixture, "tcp");
  await assertHomeNotServed(fixture, "quic");
});

test("a home nested deep in the share is never served, nor the folders above it hidden", async (t) => {
  const fixture = await hostWithHomeInside(t, "home-nested", "a/b/state");
  await assertHomeNotServed(fixture, "tcp");
  const listed = await runCli(["ls", fixture.link, "a/b"], fixture.env);
  assert.equal(listed.code, 0, listed.stderr);
  assert.doesNotMatch(listed.stdout, /state/);
});

test("pull --watch never hears of the host's home, nor syncs it, while it changes", async (t) => {
  const fixture = await hostWithHomeInside(t, "home-watch", ".teleport");
  const { base, share, home, link, env } = fixture;
  await writeFile(join(home, "planted.txt"), "state\n"); // there before the watch: then edited
  const dest = join(base, "dest");
  const watch = spawnCli(["pull", link, dest, "--watch", "--json"], env);
  onCleanup(t, async () => {
    watch.process.kill("SIGKILL");
    await watch.result.catch(() => {});
  });
  const lines = () =>
    watch
      .stdout()
      .split("\n")
      .filter((line) => line !== "");
  await waitFor(() => lines().some((line) => line.includes('"sync"')) || undefined, {
    what: "the first sync",
    timeoutMs: 20_000,
  });
  await writeFile(join(home, "planted.txt"), "state, edited\n");
  await writeFile(join(home, "identity", "another.pem"), "state\n");
  await writeFile(join(share, "new.txt"), "shared\n");
  await waitFor(async () => (await readFile(join(dest, "new.txt"), "utf8").catch(() => "")) === "shared\n", {
    what: "new.txt in DEST",
    timeoutMs: 20_000,
  });
  assert.ok(await isAbsent(join(dest, ".teleport")), "the watch synced the host's home");
  assert.doesNotMatch(lines().join("\n"), /planted|another\.pem|\.teleport/);
});

test("an upload is never written into the host's home, by its name or inside a folder pushed", async (t) => {
  const fixture = await hostWithHomeInside(t, "home-push", ".teleport", ["--allow-upload"]);
  const { base, home, writeLink, env } = fixture;
  assert.ok(writeLink !== undefined, "the host printed no write link");
  const key = await readFile(join(home, KEY));
  // A folder whose own tree holds a .teleport/identity with a key of the pusher's making.
  const src = join(base, "src");
  await mkdir(join(src, ".teleport", "identity"), { recursive: true });
  await writeFile(join(src, ".teleport", KEY), "not the host's key\n");
  await writeFile(join(src, "note.txt"), "pushed\n");
  const pusher: CliEnv = { TELEPORT_HOME: join(base, "pusher-home") };

  for (const path of [".teleport", ".teleport/identity", "to-home/new"]) {
    const pushed = await runCli(["push", join(src, "note.txt"), writeLink, "--path", path], pusher);
    assert.notEqual(pushed.code, 0, `push --path ${path} succeeded`);
    assert.match(pushed.stderr, new RegExp(ErrorCode.PATH_ESCAPE));
    assert.doesNotMatch(pushed.stderr, STACK_TRACE_LINE);
  }
  assert.ok(await isAbsent(join(home, "new")), "the refused upload made a folder in the home");

  const intoRoot = await runCli(["push", src, writeLink, "--path", ""], pusher);
  assert.notEqual(intoRoot.code, 0, "a push whose tree holds .teleport into the share root succeeded");
  assert.match(intoRoot.stderr, new RegExp(ErrorCode.PATH_ESCAPE));
  assert.deepEqual(await readFile(join(home, KEY)), key, "the host's key was replaced");
  assert.deepEqual((await readdir(join(home, "identity"))).sort(), [
    "host-cert.pem",
    "host-key.pem",
    "master-secret",
  ]);
  // The host still serves what it should.
  const pulled = await runCli(["cat", fixture.link, "readme.txt"], env);
  assert.equal(pulled.stdout, "shared\n");
});

test("a pusher never sends its own home, where the folder pushed holds it", async (t) => {
  const { base, share } = await makeShare(t, "home-pusher");
  const host = await startHost(share, { home: join(base, "host-home"), args: ["--allow-upload"] });
  onCleanup(t, () => host.stop());
  assert.ok(host.writeLink !== undefined);
  const src = join(base, "src");
  await mkdir(src);
  await writeFile(join(src, "note.txt"), "pushed\n");
  const pusher: CliEnv = { TELEPORT_HOME: join(src, ".teleport") };
  const pushed = await runCli(["push", src, host.writeLink, "--path", "up"], pusher);
  assert.equal(pushed.code, 0, pushed.stderr);
  assert.equal(await readFile(join(share, "up", "note.txt"), "utf8"), "pushed\n");
  assert.ok(await isAbsent(join(share, "up", ".teleport")), "the pusher sent its own TELEPORT_HOME");
  assert.equal(await isAbsent(join(src, ".teleport", "index.db")), false, "the pusher made no home there");
});

test("`teleport host` of its own home, or of a folder inside it, is refused", async (t) => {
  const { base } = await makeShare(t, "home-shared");
  const home = join(base, "home");
  await mkdir(join(home, "sub"), { recursive: true });
  for (const shared of [home, join(home, "sub"), join(base, "home-link")]) {
    if (shared.endsWith("home-link")) await symlink(home, shared);
    const result = await runCli(["host", shared, "--port", "0", "--bind", "127.0.0.1"], {
      TELEPORT_HOME: home,
    });
    assert.notEqual(result.code, 0, `host ${shared} started`);
    assert.match(result.stderr, new RegExp(ErrorCode.USAGE), result.stderr);
    assert.match(result.stderr, /TELEPORT_HOME/);
    assert.doesNotMatch(result.stderr, STACK_TRACE_LINE);
  }
});
