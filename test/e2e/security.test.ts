/**
 * What a client without the right link, or with a hostile path, gets: a typed error, a non-zero
 * exit, no stack trace, and not one byte from outside the share or written at the destination.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { TeleportClient } from "../../src/client/client.js";
import { ErrorCode, TeleportError } from "../../src/errors.js";
import {
  type CliEnv,
  type CliResult,
  type HostProcess,
  linkParam,
  runCli,
  STACK_TRACE_LINE,
  startHost,
  withLinkParam,
} from "../helpers/cli.js";
import { onCleanup, tempDir } from "../helpers/context.js";
import { holdPort } from "../helpers/ports.js";
import { hostWithCli, makeShare } from "../helpers/share.js";
import { isAbsent } from "../helpers/tree.js";

const SECRET_MARKER = "outside-the-share secret 5f1c";

interface SecurityFixture {
  base: string;
  share: string;
  host: HostProcess;
  env: CliEnv;
}

/**
 * A share with one ordinary file and three ways out: an absolute symlink to /etc, an absolute
 * symlink to a folder holding a secret, and a relative symlink climbing to that folder.
 */
async function hostFixture(t: TestContext): Promise<SecurityFixture> {
  const { base, share } = await makeShare(t, "security");
  const outside = join(base, "outside");
  await mkdir(join(share, "sub"), { recursive: true });
  await mkdir(outside);
  await writeFile(join(share, "a.txt"), "inside the share\n");
  await writeFile(join(share, "sub", "b.txt"), "also inside\n");
  await writeFile(join(outside, "secret.txt"), `${SECRET_MARKER}\n`);
  await symlink("/etc", join(share, "out"));
  await symlink(outside, join(share, "secret-dir"));
  await symlink("../../outside", join(share, "sub", "up"));
  const host = await hostWithCli(t, { base, share });
  return { base, share, host, env: { TELEPORT_HOME: join(base, "client-home") } };
}

/** A failed command: non-zero exit, the code in stderr, one-line message without a stack trace. */
function assertFailsWith(result: CliResult, codes: readonly string[], what: string): void {
  assert.notEqual(result.code, 0, `${what} should fail; stdout: ${result.stdout}`);
  assert.equal(result.signal, null, `${what} should exit, not die from a signal`);
  assert.ok(
    codes.some((code) => result.stderr.includes(code)),
    `${what}: stderr should contain ${codes.join(" or ")}, got: ${result.stderr}`,
  );
  assert.doesNotMatch(result.stderr, STACK_TRACE_LINE, `${what}: stderr has a stack trace`);
}

function anotherSecret(link: string): string {
  const current = linkParam(link, "key");
  for (;;) {
    const candidate = randomBytes(16).toString("base64url");
    if (candidate !== current) return candidate;
  }
}

test("a link with the wrong secret is refused with TELEPORT_ERR_AUTH and nothing is written", async (t) => {
  const { base, host, env } = await hostFixture(t);
  const wrong = withLinkParam(host.link, "key", anotherSecret(host.link));
  const dest = join(base, "dest");

  const [pulled, listed, catted] = await Promise.all([
    runCli(["pull", wrong, dest, "--no-progress"], env),
    runCli(["ls", wrong], env),
    runCli(["cat", wrong, "a.txt"], env),
  ]);

  assertFailsWith(pulled, [ErrorCode.AUTH], "pull with a wrong secret");
  assertFailsWith(listed, [ErrorCode.AUTH], "ls with a wrong secret");
  assertFailsWith(catted, [ErrorCode.AUTH], "cat with a wrong secret");
  assert.equal(pulled.stdout, "");
  assert.equal(listed.stdout, "");
  assert.equal(catted.stdout, "");
  assert.ok(await isAbsent(dest), "pull with a wrong secret must not create its destination");
  // The right link still works: the refusal was about the secret, not a broken host.
  assert.equal((await runCli(["cat", host.link, "a.txt"], env)).stdout, "inside the share\n");
});

test("a link carrying another host's fingerprint is refused with TELEPORT_ERR_FINGERPRINT", async (t) => {
  const { base, host, env } = await hostFixture(t);
  const otherShare = join(base, "other-share");
  await mkdir(otherShare);
  const other = await startHost(otherShare, { home: join(base, "other-host-home") });
  onCleanup(t, () => other.stop());
  const otherFingerprint = linkParam(other.link, "fp");
  assert.notEqual(
    otherFingerprint,
    linkParam(host.link, "fp"),
    "two TELEPORT_HOMEs must give two identities",
  );
  const spliced = withLinkParam(host.link, "fp", otherFingerprint);
  const dest = join(base, "dest");

  const [pulled, catted] = await Promise.all([
    runCli(["pull", spliced, dest, "--no-progress"], env),
    runCli(["cat", spliced, "a.txt"], env),
  ]);

  assertFailsWith(pulled, [ErrorCode.FINGERPRINT], "pull with another host's fingerprint");
  assertFailsWith(catted, [ErrorCode.FINGERPRINT], "cat with another host's fingerprint");
  assert.equal(catted.stdout, "");
  assert.ok(await isAbsent(dest), "pull with a wrong fingerprint must not create its destination");
});

test("malformed links are refused with TELEPORT_ERR_BAD_LINK before any connection", async (t) => {
  const base = await tempDir(t, "bad-link");
  const env = { TELEPORT_HOME: join(base, "home") };
  // A port that refuses every connection: a well-formed link to it must get past parsing (and fail to connect).
  const address = await holdPort(t);
  const fp = randomBytes(32).toString("base64url");
  const key = randomBytes(16).toString("base64url");
  const wellFormed = `teleport://127.0.0.1:${address.port}/?fp=${fp}&key=${key}`;
  const malformed = [
    "not a link",
    "",
    `https://127.0.0.1:${address.port}/?fp=${fp}&key=${key}`,
    `teleport://127.0.0.1:${address.port}/?key=${key}`,
    `teleport://127.0.0.1:${address.port}/?fp=${fp}`,
    `teleport://127.0.0.1:${address.port}/?fp=${fp}&key=${randomBytes(8).toString("base64url")}`,
    `teleport://127.0.0.1:${address.port}/?fp=${randomBytes(16).toString("base64url")}&key=${key}`,
    `teleport://127.0.0.1:${address.port}/?fp=${fp}&key=${key.slice(0, 10)}$%25!`,
    `teleport://127.0.0.1/?fp=${fp}&key=${key}`,
    `teleport://127.0.0.1:70000/?fp=${fp}&key=${key}`,
  ];

  const [control, ...results] = await Promise.all([
    runCli(["pull", wellFormed, join(base, "dest-control"), "--no-progress"], env),
    ...malformed.map((link, i) => runCli(["pull", link, join(base, `dest-${i}`), "--no-progress"], env)),
  ]);

  // The port refuses, so the control fails, but never as a bad link.
  assert.ok(control !== undefined);
  assert.notEqual(control.code, 0);
  assert.doesNotMatch(
    control.stderr,
    /TELEPORT_ERR_BAD_LINK/,
    `a well-formed link was refused: ${control.stderr}`,
  );
  results.forEach((result, i) => {
    assertFailsWith(result, [ErrorCode.BAD_LINK], `pull ${JSON.stringify(malformed[i])}`);
  });
  for (let i = 0; i < malformed.length; i++) assert.ok(await isAbsent(join(base, `dest-${i}`)));
});

test("cat, ls and pull refuse paths that climb out of the share with TELEPORT_ERR_PATH_ESCAPE", async (t) => {
  const { base, host, env } = await hostFixture(t);
  const attempts: { args: string[]; dest?: string }[] = [
    { args: ["cat", host.link, "../x"] },
    { args: ["cat", host.link, "sub/../../x"] },
    { args: ["cat", host.link, ".."] },
    { args: ["ls", host.link, "../"] },
    { args: ["ls", host.link, "sub/../.."] },
    {
      args: ["pull", host.link, join(base, "dest-dotdot"), "--path", "../x", "--no-progress"],
      dest: join(base, "dest-dotdot"),
    },
    {
      args: ["pull", host.link, join(base, "dest-deep"), "--path", "sub/../../x"],
      dest: join(base, "dest-deep"),
    },
  ];

  const results = await Promise.all(attempts.map((attempt) => runCli(attempt.args, env)));

  for (const [i, result] of results.entries()) {
    const attempt = attempts[i];
    assert.ok(attempt !== undefined);
    assertFailsWith(
      result,
      [ErrorCode.PATH_ESCAPE],
      attempt.args.filter((arg) => arg !== host.link).join(" "),
    );
    assert.equal(result.stdout, "");
    if (attempt.dest !== undefined)
      assert.ok(await isAbsent(attempt.dest), `${attempt.dest} must not be created`);
  }
});

test("symlinks that lead out of the share cannot be read, listed or pulled through", async (t) => {
  const { base, host, env } = await hostFixture(t);
  const hostname = (await readFile("/etc/hostname", "utf8").catch(() => "")).trim();
  const attempts: { args: string[]; dest?: string }[] = [
    { args: ["cat", host.link, "out/hostname"] },
    { args: ["cat", host.link, "out/passwd"] },
    { args: ["cat", host.link, "secret-dir/secret.txt"] },
    { args: ["cat", host.link, "sub/up/secret.txt"] },
    { args: ["ls", host.link, "out"] },
    { args: ["ls", host.link, "secret-dir", "--json"] },
    {
      args: ["pull", host.link, join(base, "dest-out"), "--path", "out", "--no-progress"],
      dest: join(base, "dest-out"),
    },
    {
      args: [
        "pull",
        host.link,
        join(base, "dest-secret"),
        "--path",
        "secret-dir/secret.txt",
        "--no-progress",
      ],
      dest: join(base, "dest-secret"),
    },
  ];

  const results = await Promise.all(attempts.map((attempt) => runCli(attempt.args, env)));

  for (const [i, result] of results.entries()) {
    const attempt = attempts[i];
    assert.ok(attempt !== undefined);
    const what = attempt.args.filter((arg) => arg !== host.link).join(" ");
    assertFailsWith(result, [ErrorCode.PATH_ESCAPE], what);
    // Nothing but, with --json, the error object.
    const stdout = attempt.args.includes("--json")
      ? /^\{"error":\{"code":"TELEPORT_ERR_PATH_ESCAPE",.*\}\}\n$/
      : /^$/;
    assert.match(result.stdout, stdout, `${what} wrote to stdout`);
    assert.ok(!result.stdout.includes(SECRET_MARKER), `${what} leaked the secret`);
    assert.ok(!result.stderr.includes(SECRET_MARKER), `${what} leaked the secret`);
    if (hostname !== "") assert.ok(!result.stderr.includes(hostname), `${what} leaked /etc/hostname`);
    if (attempt.dest !== undefined) {
      // The pull may have made its destination before the host refused: it must hold nothing.
      const written = (await isAbsent(attempt.dest)) ? [] : await readdir(attempt.dest, { recursive: true });
      assert.deepEqual(written, [], `${what} wrote into ${attempt.dest}`);
    }
  }

  // Listing the share shows none of the escaping links.
  const listing = await runCli(["ls", host.link, "-r", "--json"], env);
  assert.equal(listing.code, 0, listing.stderr);
  const paths = listing.stdout
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => (JSON.parse(line) as { path: string }).path);
  assert.deepEqual(paths.filter((path) => path !== "").sort(), ["a.txt", "sub", "sub/b.txt"]);
});

test("an absolute path is taken relative to the share root and never reaches the host's filesystem", async (t) => {
  // The CLI reads "/x" as the share's "x" (normalizeUserPath): an absolute path cannot escape.
  const { base, host, env } = await hostFixture(t);
  const dest = join(base, "dest");

  const [etc, pulled, inside] = await Promise.all([
    runCli(["cat", host.link, "/etc/passwd"], env),
    runCli(["pull", host.link, dest, "--path", "/etc", "--no-progress"], env),
    runCli(["cat", host.link, "/a.txt"], env),
  ]);

  assertFailsWith(etc, [ErrorCode.PATH_ESCAPE, ErrorCode.NOT_FOUND], "cat /etc/passwd");
  assert.equal(etc.stdout, "");
  assert.doesNotMatch(etc.stdout, /root:/);
  assertFailsWith(pulled, [ErrorCode.PATH_ESCAPE, ErrorCode.NOT_FOUND], "pull --path /etc");
  assert.ok(await isAbsent(join(dest, "etc")));
  assert.equal(inside.code, 0, inside.stderr);
  assert.equal(inside.stdout, "inside the share\n");
});

test("the host itself refuses escaping paths sent by a client that skips its own checks", async (t) => {
  const { host } = await hostFixture(t);
  const client = await TeleportClient.connect(host.link);
  onCleanup(t, () => client.close());
  const isHostError = (code: string) => (err: unknown) => {
    assert.ok(err instanceof TeleportError, `expected a TeleportError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    // Answered by the host, not refused locally before sending.
    assert.match(err.message, /host: /);
    return true;
  };

  await assert.rejects(client.stat("../etc"), isHostError(ErrorCode.PATH_ESCAPE));
  await assert.rejects(client.stat("/etc"), isHostError(ErrorCode.PATH_ESCAPE));
  await assert.rejects(client.stat("sub/../../etc"), isHostError(ErrorCode.PATH_ESCAPE));
  await assert.rejects(client.stat("out"), isHostError(ErrorCode.PATH_ESCAPE));
  await assert.rejects(client.stat("out/hostname"), isHostError(ErrorCode.PATH_ESCAPE));
  await assert.rejects(client.stat("secret-dir/secret.txt"), isHostError(ErrorCode.PATH_ESCAPE));
  await assert.rejects(client.stat("sub//b.txt"), isHostError(ErrorCode.UNSAFE_NAME));
  await assert.rejects(client.stat("./a.txt"), isHostError(ErrorCode.UNSAFE_NAME));
  await assert.rejects(
    (async () => {
      for await (const piece of client.readRange("../etc/passwd", 0, 1))
        assert.fail(`host sent ${piece.length} bytes`);
    })(),
    isHostError(ErrorCode.PATH_ESCAPE),
  );
  await assert.rejects(
    (async () => {
      for await (const piece of client.readRange("secret-dir/secret.txt", 0, 4))
        assert.fail(`host sent ${piece.length} bytes`);
    })(),
    isHostError(ErrorCode.PATH_ESCAPE),
  );
  await assert.rejects(
    (async () => {
      for await (const entry of client.list("/etc")) assert.fail(`host listed ${entry.path}`);
    })(),
    isHostError(ErrorCode.PATH_ESCAPE),
  );
  await assert.rejects(
    (async () => {
      for await (const event of client.manifest("../")) assert.fail(`host sent a ${event.kind} event`);
    })(),
    isHostError(ErrorCode.PATH_ESCAPE),
  );

  // Each refusal ended its own request only; the connection still serves.
  const entry = await client.stat("a.txt");
  assert.equal(entry.path, "a.txt");
  assert.equal(entry.size, "inside the share\n".length);
});

test("missing files behind an escaping symlink answer PATH_ESCAPE, not NOT_FOUND (no probing outside the share)", async (t) => {
  const { share, host } = await hostFixture(t);
  await symlink("/nonexistent-teleport-target/file", join(share, "dangling-out"));
  await symlink("missing-inside", join(share, "dangling-in"));
  const client = await TeleportClient.connect(host.link);
  onCleanup(t, () => client.close());
  const failsWith = (code: string) => (err: unknown) => err instanceof TeleportError && err.code === code;

  // Existing and missing targets outside look the same from the client's side.
  await assert.rejects(client.stat("out/hostname"), failsWith(ErrorCode.PATH_ESCAPE));
  await assert.rejects(client.stat("out/no-such-file-here"), failsWith(ErrorCode.PATH_ESCAPE));
  await assert.rejects(client.stat("secret-dir/missing/deeper"), failsWith(ErrorCode.PATH_ESCAPE));
  await assert.rejects(client.stat("dangling-out"), failsWith(ErrorCode.PATH_ESCAPE));
  // Inside the share, missing is still plainly missing.
  await assert.rejects(client.stat("sub/missing.txt"), failsWith(ErrorCode.NOT_FOUND));
  await assert.rejects(client.stat("dangling-in"), failsWith(ErrorCode.NOT_FOUND));
});
