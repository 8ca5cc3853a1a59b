/**
 * The CLI as a user meets it when things go wrong (issue 21's "Broken" list), through the real
 * `teleport` processes: a reader that closes stdout, an empty DEST, a failed pull's DEST folder,
 * entries the host skips, file-system errors that name their path, the hint after wrong
 * secrets, --json failures, Ctrl-C and SIGTERM, and `cat`, `ls` and the summary's words.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, chown, mkdir, readdir, readFile, symlink } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import {
  CLI_PATH,
  type CliEnv,
  type CliResult,
  linkParam,
  runCli,
  STACK_TRACE_LINE,
  spawnCli,
  withLinkParam,
} from "../helpers/cli.js";
import { onCleanup, waitFor } from "../helpers/context.js";
import { hostInProcess, hostWithCli, makeShare } from "../helpers/share.js";
import { findPartFiles, isAbsent, MiB, pseudoRandomBytes } from "../helpers/tree.js";

/** Runs the CLI with its stdout's read end closed before it writes: every write meets EPIPE. */
async function runWithStdoutClosed(args: string[], env: CliEnv): Promise<CliResult> {
  const running = spawnCli(args, env);
  running.process.stdout?.destroy();
  return running.result;
}

/** Runs the CLI in `cwd` (runCli runs it in the test's own folder). */
function runCliIn(
  cwd: string,
  args: string[],
  env: CliEnv,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    cwd,
    env: { ...process.env, NODE_TEST_CONTEXT: undefined, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (data: Buffer) => {
    stderr += data.toString();
  });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stderr }));
  });
}

function assertQuiet(result: CliResult, what: string): void {
  assert.equal(result.code, 0, `${what}: exit ${result.code ?? result.signal}: ${result.stderr}`);
  assert.equal(result.stderr, "", `${what}: nothing on stderr`);
}

test("a closed stdout ends ls, cat and manifest quietly with exit 0, not a connection error", async (t) => {
  const files: Record<string, string | Buffer> = { "big.bin": pseudoRandomBytes(8 * MiB, "closed-stdout") };
  for (let i = 0; i < 2000; i++) files[`many/file-${i}.txt`] = `${i}\n`;
  const { base, share, env } = await makeShare(t, "closed-stdout", files);
  const host = await hostWithCli(t, { base, share });

  assertQuiet(await runWithStdoutClosed(["ls", host.link, "many"], env), "ls");
  assertQuiet(await runWithStdoutClosed(["ls", host.link, "-r", "--json"], env), "ls -r --json");
  assertQuiet(await runWithStdoutClosed(["cat", host.link, "big.bin"], env), "cat");
  assertQuiet(await runWithStdoutClosed(["manifest", join(share, "big.bin")], env), "manifest");
  assertQuiet(
    await runWithStdoutClosed(["manifest", join(share, "big.bin"), "--json"], env),
    "manifest --json",
  );

  // As the issue ran it: a reader that takes what it wants and goes (bash's status is teleport's).
  const script = 'node "$1" cat "$2" big.bin > >(head -c 10 >/dev/null)';
  const piped = spawnSync("bash", ["-c", script, "bash", CLI_PATH, host.link], {
    env: { ...process.env, ...env },
    encoding: "utf8",
  });
  assert.equal(piped.status, 0, `cat | head -c 10: ${piped.stderr}`);
  assert.equal(piped.stderr, "");
});

test("pull LINK '' is refused as a usage error and writes nothing in the current folder", async (t) => {
  const { base, share, env } = await makeShare(t, "empty-dest", { "a.txt": "a\n" });
  const host = await hostWithCli(t, { base, share });
  const cwd = join(base, "cwd");
  await mkdir(cwd);

  const result = await runCliIn(cwd, ["pull", host.link, ""], env);

  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /^teleport: TELEPORT_ERR_USAGE: DEST is empty/m);
  assert.deepEqual(await readdir(cwd), []);
});

test("a pull that fails before writing removes the DEST folders it made, and keeps one that was there", async (t) => {
  const { base, share, env } = await makeShare(t, "failed-dest", { "a.txt": "a\n" });
  await symlink("/", join(share, "out"));
  const host = await hostWithCli(t, { base, share });

  const missing = await runCli(["pull", host.link, join(base, "new", "dest"), "--path", "nope"], env);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /TELEPORT_ERR_NOT_FOUND/);
  assert.ok(await isAbsent(join(base, "new")), "no folder left behind for a missing --path");

  const escaping = await runCli(["pull", host.link, join(base, "dest2"), "--path", "out/etc"], env);
  assert.equal(escaping.code, 1);
  assert.match(escaping.stderr, /TELEPORT_ERR_PATH_ESCAPE/);
  assert.ok(await isAbsent(join(base, "dest2")), "no folder left behind for an escaping --path");

  await mkdir(join(base, "existing"));
  const into = await runCli(["pull", host.link, join(base, "existing"), "--path", "nope"], env);
  assert.equal(into.code, 1);
  assert.deepEqual(await readdir(join(base, "existing")), [], "a DEST that was there stays");
});

test("entries the host skips (symlinks out, dangling ones out, FIFOs) are listed on stderr and in --json", async (t) => {
  const { base, share, env } = await makeShare(t, "skipped", { "a.txt": "a\n", "sub/b.txt": "b\n" });
  await symlink("/etc/passwd", join(share, "passwd"));
  await symlink("../../nowhere", join(share, "sub", "dangling-out"));
  await symlink("missing-inside", join(share, "dangling-in")); // kept: it stays inside
  execFileSync("mkfifo", [join(share, "sub", "pipe"), join(share, "evil\x1b[2Jname")]);
  const host = await hostWithCli(t, { base, share });

  const human = await runCli(["pull", host.link, join(base, "dest"), "--no-progress"], env);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stderr, /^teleport: skipped "passwd": a symlink leading outside the share$/m);
  assert.match(human.stderr, /^teleport: skipped "sub\/dangling-out": a symlink leading outside the share$/m);
  assert.match(human.stderr, /^teleport: skipped "sub\/pipe": a FIFO$/m);
  assert.match(human.stderr, /^teleport: skipped "evil\\x1b\[2Jname": a FIFO$/m, "escaped for the terminal");
  assert.ok(!human.stderr.includes("\x1b"), "no raw escape reaches the terminal");
  assert.match(human.stdout, /^pulled 2 files, 2 folders, 1 symlink: /);

  const json = await runCli(["pull", host.link, join(base, "dest-json"), "--json"], env);
  assert.equal(json.code, 0, json.stderr);
  const summary = JSON.parse(json.stdout) as {
    skipped: { path: string; reason: string }[];
    skippedCount: number;
  };
  const byPath = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : 1);
  assert.deepEqual(summary.skipped.sort(byPath), [
    { path: "evil\x1b[2Jname", reason: "fifo" },
    { path: "passwd", reason: "symlink-outside" },
    { path: "sub/dangling-out", reason: "symlink-outside" },
    { path: "sub/pipe", reason: "fifo" },
  ]);
  assert.equal(summary.skippedCount, 4);
});

/** Runs the CLI as nobody when the tests run as root (root may write anywhere); undefined if it cannot. */
function unprivileged(t: TestContext): string[] | undefined {
  if (process.getuid?.() !== 0) return [];
  const wrapper = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
  try {
    execFileSync(wrapper[0] as string, [...wrapper.slice(1), "true"]);
    return wrapper;
  } catch (err) {
    t.skip(`running as root and cannot run the CLI as nobody here: ${err}`);
    return undefined;
  }
}

test("permission errors name the path and say what to do: an unwritable TELEPORT_HOME, an unwritable DEST parent", async (t) => {
  const wrapper = unprivileged(t);
  if (wrapper === undefined) return;
  const { base, share } = await makeShare(t, "permission", { "a.txt": "a\n" });
  await chmod(base, 0o755);
  const host = await hostWithCli(t, { base, share });
  const locked = join(base, "locked");
  await mkdir(locked, { mode: 0o555 });
  const home = join(base, "home");
  await mkdir(home);
  if (wrapper.length > 0) await chown(home, 65534, 65534);
  const pullAs = async (args: string[], env: CliEnv) =>
    spawnCli(["pull", host.link, ...args], env, wrapper).result;

  const badHome = await pullAs([join(home, "dest")], { TELEPORT_HOME: join(locked, "home") });
  assert.equal(badHome.code, 1, badHome.stderr);
  assert.match(
    badHome.stderr,
    new RegExp(`^teleport: TELEPORT_ERR_PERMISSION: TELEPORT_HOME ${locked}/home`, "m"),
  );
  assert.match(
    badHome.stderr,
    /^ {2}hint: make .*locked\/home a folder this user may write to, or set TELEPORT_HOME/m,
  );

  const badDest = await pullAs([join(locked, "dest")], { TELEPORT_HOME: home });
  assert.equal(badDest.code, 1, badDest.stderr);
  assert.match(
    badDest.stderr,
    new RegExp(`^teleport: TELEPORT_ERR_PERMISSION: .*${locked}/dest: permission denied`, "m"),
  );
  assert.match(badDest.stderr, new RegExp(`^ {2}hint: .*${locked}/dest.*owner and mode`, "m"));
  assert.doesNotMatch(badDest.stderr + badHome.stderr, STACK_TRACE_LINE);
});

test("after several wrong secrets the host answers slowly, and the hint says to wait, not to get a fresh link", async (t) => {
  const { base, share, env } = await makeShare(t, "auth-delay", { "a.txt": "a\n" });
  const host = await hostWithCli(t, { base, share });
  const key = linkParam(host.link, "key");
  const wrong = withLinkParam(host.link, "key", `${key[0] === "A" ? "B" : "A"}${key.slice(1)}`);

  const first = await runCli(["pull", wrong, join(base, "guess-0")], env);
  assert.match(first.stderr, /TELEPORT_ERR_AUTH/);
  await runCli(["pull", wrong, join(base, "guess-1")], env);
  const delayed = await runCli(["pull", wrong, join(base, "guess-2")], env);

  assert.equal(delayed.code, 1);
  assert.match(delayed.stderr, /^teleport: TELEPORT_ERR_AUTH: /m);
  assert.match(delayed.stderr, /^ {2}hint: .*wait 60 s before trying again/m);
  assert.doesNotMatch(delayed.stderr, /fresh link/);
});

test("--json failures print one JSON error object on stdout", async (t) => {
  const { base, share, env } = await makeShare(t, "json-error", { "a.txt": "a\n" });
  const host = await hostWithCli(t, { base, share });

  const pulled = await runCli(["pull", host.link, join(base, "dest"), "--path", "nope", "--json"], env);
  assert.equal(pulled.code, 1);
  const error = JSON.parse(pulled.stdout) as {
    error: { code: string; message: string; hint: string | null };
  };
  assert.equal(error.error.code, "TELEPORT_ERR_NOT_FOUND");
  assert.match(error.error.message, /"nope"/);
  assert.equal(typeof error.error.hint, "string");

  const listed = await runCli(["ls", host.link, "nope", "--json"], env);
  assert.equal(listed.code, 1);
  assert.equal(JSON.parse(listed.stdout).error.code, "TELEPORT_ERR_NOT_FOUND");

  const usage = await runCli(["pull", host.link, join(base, "dest"), "--streams", "0", "--json"], env);
  assert.equal(usage.code, 2);
  assert.equal(JSON.parse(usage.stdout).error.code, "TELEPORT_ERR_USAGE");
});

for (const [signal, status] of [
  ["SIGINT", 130],
  ["SIGTERM", 143],
] as const) {
  test(`${signal} during a pull: exit ${status}, and no part file passed off as whole`, async (t) => {
    const content = pseudoRandomBytes(16 * MiB, `signal-${signal}`);
    const { base, share, env } = await makeShare(t, `signal-${signal}`, { "data.bin": content });
    let chunksSent = 0;
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const host = await hostInProcess(t, {
      base,
      share,
      faults: { beforeChunk: () => (chunksSent++ < 4 ? Promise.resolve() : held) },
    });
    onCleanup(t, () => release());
    const dest = join(base, "dest");
    const pulling = spawnCli(["pull", host.url, dest, "--transport", "tcp", "--streams", "1", "--json"], env);
    onCleanup(t, () => pulling.process.kill("SIGKILL"));
    await waitFor(async () => (await findPartFiles(dest)).length > 0 && chunksSent > 4, {
      what: "the pull to be held mid-transfer",
      timeoutMs: 30_000,
    });

    pulling.process.kill(signal);
    const result = await pulling.result;

    assert.equal(result.signal, null, "the pull exits by itself");
    assert.equal(result.code, status, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`^teleport: TELEPORT_ERR_CANCELLED: pull interrupted \\(${signal}\\)`, "m"),
    );
    assert.equal(JSON.parse(result.stdout).error.code, "TELEPORT_ERR_CANCELLED");
    assert.ok(await isAbsent(join(dest, "data.bin")), "nothing at the final path");
    const left = (await isAbsent(dest)) ? [] : await readdir(dest);
    assert.deepEqual(left, await findPartFiles(dest), "nothing but part files (kept to resume, or removed)");
  });
}

test("cat returns what there is of a range running past the end, and nothing past it", async (t) => {
  const alphabet = "abcdefghijklmnopqrstuvwxyz\n";
  const { base, share, env } = await makeShare(t, "cat-range", { "27.txt": alphabet });
  const host = await hostWithCli(t, { base, share });

  const tail = await runCli(["cat", host.link, "27.txt", "--offset", "20", "--length", "50"], env);
  assert.equal(tail.code, 0, tail.stderr);
  assert.equal(tail.stdout, alphabet.slice(20));

  const past = await runCli(["cat", host.link, "27.txt", "--offset", "30"], env);
  assert.equal(past.code, 0, past.stderr);
  assert.equal(past.stdout, "");
});

test("ls lists in order of path, and the summary says 1 file and the network's rate apart from reused bytes", async (t) => {
  const names = Array.from({ length: 40 }, () => randomBytes(6).toString("hex"));
  const files = Object.fromEntries(names.map((name) => [`d/${name}`, name]));
  const { base, share, env } = await makeShare(t, "ls-order", { ...files, "one/only.txt": "only\n" });
  const host = await hostWithCli(t, { base, share });

  const listed = await runCli(["ls", host.link, "d", "--json"], env);
  const paths = listed.stdout
    .trim()
    .split("\n")
    .map((line) => (JSON.parse(line) as { path: string }).path);
  assert.deepEqual(paths, [...paths].sort());
  assert.equal(paths.length, 40);
  const recursive = await runCli(["ls", host.link, "-r", "--json"], env);
  const all = recursive.stdout
    .trim()
    .split("\n")
    .map((line) => (JSON.parse(line) as { path: string }).path);
  assert.deepEqual(all.slice(0, 3), ["", "d", `d/${[...names].sort()[0]}`]);

  const dest = join(base, "dest");
  const first = await runCli(["pull", host.link, dest, "--path", "one", "--no-progress"], env);
  assert.match(
    first.stdout,
    /^pulled 1 file, 1 folder, 0 symlinks: 5 B in [\d.]+ s, 5 B from the network at /,
  );
  const again = await runCli(["pull", host.link, dest, "--path", "one", "--no-progress"], env);
  assert.match(again.stdout, /: 5 B in [\d.]+ s, nothing from the network, 5 B reused$/m);
  assert.equal(await readFile(join(dest, "one", "only.txt"), "utf8"), "only\n");
});

test("a pull with nothing skipped says nothing of it: no stderr, an empty skipped list", async (t) => {
  const { base, share, env } = await makeShare(t, "nothing-skipped", { "a.txt": "a\n" });
  const host = await hostWithCli(t, { base, share });
  const result = await runCli(["pull", host.link, join(base, "dest"), "--json"], env);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "");
  assert.deepEqual(JSON.parse(result.stdout).skipped, []);
});
