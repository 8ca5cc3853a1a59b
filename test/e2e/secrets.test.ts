/**
 * Secrets at rest and the lifetime of a share link, against real `teleport host` and `pull`
 * processes: the link file and the chunk index are readable by their owner only and never
 * written through a planted symlink; a damaged master secret stops the host instead of becoming
 * an empty key; a link can be read from stdin (out of `ps`), rotated, expired and used once.
 */
import assert from "node:assert/strict";
import { lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { ErrorCode } from "../../src/errors.js";
import {
  type CliEnv,
  type CliResult,
  linkParam,
  runCli,
  STACK_TRACE_LINE,
  startHost,
  withLinkParam,
} from "../helpers/cli.js";
import { onCleanup, tempDir } from "../helpers/context.js";

interface Hosted {
  base: string;
  share: string;
  hostHome: string;
  env: CliEnv;
}

async function shareFolder(t: TestContext, label: string): Promise<Hosted> {
  const base = await tempDir(t, `secrets-${label}`);
  const share = join(base, "share");
  await mkdir(share);
  await writeFile(join(share, "a.txt"), "secret contents\n");
  return {
    base,
    share,
    hostHome: join(base, "host-home"),
    env: { TELEPORT_HOME: join(base, "client-home") },
  };
}

function assertSucceeded(result: CliResult, what: string): void {
  assert.equal(result.code, 0, `${what} failed (${result.code ?? result.signal}): ${result.stderr}`);
}

function assertFailedWith(result: CliResult, code: ErrorCode): void {
  assert.equal(
    result.code,
    1,
    `expected exit 1 with ${code}, got ${result.code ?? result.signal}: ${result.stderr}`,
  );
  assert.match(result.stderr, new RegExp(`^teleport: ${code}: `, "m"));
  assert.doesNotMatch(result.stderr, STACK_TRACE_LINE);
}

/** `link` (a restarted host's, on its new port) with the secret of `old`. */
const withOldKey = (link: string, old: string) => withLinkParam(link, "key", linkParam(old, "key"));

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

test("a local user cannot read the link file or the chunk index, nor plant a symlink for the link file", async (t) => {
  const hosted = await shareFolder(t, "modes");
  const linkDir = join(hosted.base, "links");
  await mkdir(linkDir);
  const linkFile = join(linkDir, "link.txt");
  // Another user's trap: the old temp name (and any name in the folder) pointing elsewhere.
  const victim = join(hosted.base, "victim.txt");
  await writeFile(victim, "untouched\n");
  await symlink(victim, join(linkDir, "link.txt.tmp-1"));
  const host = await startHost(hosted.share, { home: hosted.hostHome, linkFile });
  onCleanup(t, () => host.stop());

  assert.equal(await modeOf(linkFile), 0o600, "the link file is the share's password");
  assert.equal(await readFile(victim, "utf8"), "untouched\n");
  assert.deepEqual((await readdir(linkDir)).sort(), ["link.txt", "link.txt.tmp-1"], "no temp file left");

  const dest = join(hosted.base, "dest");
  assertSucceeded(await runCli(["pull", host.link, dest, "--no-progress"], hosted.env), "pull");
  for (const home of [hosted.hostHome, hosted.env.TELEPORT_HOME]) {
    for (const name of await readdir(home)) {
      if (name.startsWith("index.db")) assert.equal(await modeOf(join(home, name)), 0o600, `${home}/${name}`);
    }
  }
});

test("a damaged master secret stops the host instead of keying links with an empty secret", async (t) => {
  const hosted = await shareFolder(t, "master-secret");
  const host = await startHost(hosted.share, { home: hosted.hostHome });
  await host.stop();
  const secretFile = join(hosted.hostHome, "identity", "master-secret");
  for (const damaged of ["", "not hex at all\n", "abcd\n"]) {
    await writeFile(secretFile, damaged);
    const result = await runCli(["host", hosted.share, "--port", "0", "--bind", "127.0.0.1"], {
      TELEPORT_HOME: hosted.hostHome,
    });
    assertFailedWith(result, ErrorCode.IDENTITY);
    assert.match(result.stderr, /hint: /);
    assert.equal(result.stdout, "", "no link printed");
  }
});

test("pull - reads the link from stdin, keeping it out of the process list", async (t) => {
  const hosted = await shareFolder(t, "stdin");
  const host = await startHost(hosted.share, { home: hosted.hostHome });
  onCleanup(t, () => host.stop());
  const dest = join(hosted.base, "dest");
  const result = await runCli(["pull", "-", dest, "--no-progress"], hosted.env, { stdin: `${host.link}\n` });
  assertSucceeded(result, "pull -");
  assert.equal(await readFile(join(dest, "a.txt"), "utf8"), "secret contents\n");
  assertFailedWith(await runCli(["ls", "-"], hosted.env, { stdin: "\n" }), ErrorCode.BAD_LINK);
});

test("host --rotate: a leaked link stops working", async (t) => {
  const hosted = await shareFolder(t, "rotate");
  const first = await startHost(hosted.share, { home: hosted.hostHome });
  const leaked = first.link;
  await first.stop();
  const again = await startHost(hosted.share, {
    home: hosted.hostHome,
    linkFile: join(hosted.base, "again"),
  });
  assert.equal(linkParam(again.link, "key"), linkParam(leaked, "key"), "a restarted host keeps its secret");
  await again.stop();

  const rotated = await startHost(hosted.share, {
    home: hosted.hostHome,
    linkFile: join(hosted.base, "rotated"),
    args: ["--rotate"],
  });
  onCleanup(t, () => rotated.stop());
  assert.notEqual(linkParam(rotated.link, "key"), linkParam(leaked, "key"));
  assertFailedWith(await runCli(["ls", withOldKey(rotated.link, leaked)], hosted.env), ErrorCode.AUTH);
  assertSucceeded(await runCli(["ls", rotated.link], hosted.env), "ls with the new link");
});

test("host --expire: the link stops working when it runs out, also after a restart", async (t) => {
  const hosted = await shareFolder(t, "expire");
  const host = await startHost(hosted.share, { home: hosted.hostHome, args: ["--expire", "2s"] });
  onCleanup(t, () => host.stop());
  assertSucceeded(await runCli(["ls", host.link], hosted.env), "ls before expiry");
  const exited = await host.exited;
  assert.equal(exited.code, 0, exited.stderr);
  assert.match(exited.stderr, /the link expired/);

  const restarted = await startHost(hosted.share, {
    home: hosted.hostHome,
    linkFile: join(hosted.base, "again"),
  });
  onCleanup(t, () => restarted.stop());
  assertFailedWith(await runCli(["ls", withOldKey(restarted.link, host.link)], hosted.env), ErrorCode.AUTH);
  const badDuration = await runCli(["host", hosted.share, "--expire", "5 minutes"], hosted.env);
  assert.equal(badDuration.code, 2, badDuration.stderr);
});

test("host --once: the host stops after the first complete pull and its link is retired", async (t) => {
  const hosted = await shareFolder(t, "once");
  const host = await startHost(hosted.share, { home: hosted.hostHome, args: ["--once"] });
  onCleanup(t, () => host.stop());
  // A connection with the wrong secret is not a pull.
  const wrong = host.link.replace(/key=[^&]+/, `key=${Buffer.alloc(16, 7).toString("base64url")}`);
  assertFailedWith(await runCli(["ls", wrong], hosted.env), ErrorCode.AUTH);
  assert.equal(host.process.exitCode, null, "still serving after a wrong link");

  const dest = join(hosted.base, "dest");
  assertSucceeded(await runCli(["pull", host.link, dest, "--no-progress"], hosted.env), "pull");
  const exited = await host.exited;
  assert.equal(exited.code, 0, exited.stderr);
  assert.match(exited.stderr, /used once/);
  assert.equal(await readFile(join(dest, "a.txt"), "utf8"), "secret contents\n");

  const restarted = await startHost(hosted.share, {
    home: hosted.hostHome,
    linkFile: join(hosted.base, "again"),
  });
  onCleanup(t, () => restarted.stop());
  assertFailedWith(await runCli(["ls", withOldKey(restarted.link, host.link)], hosted.env), ErrorCode.AUTH);
  assert.ok((await lstat(join(hosted.hostHome, "identity", "shares"))).isDirectory());
});
