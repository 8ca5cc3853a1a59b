/**
 * `teleport push` end to end: a real `teleport host --allow-upload` and real pushers, checked
 * against the source tree byte for byte, and what crossed the network against what the host
 * already held.
 */
import assert from "node:assert/strict";
import { copyFile, mkdir, readdir, readFile, symlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { ErrorCode } from "../../src/errors.js";
import {
  type CliEnv,
  type CliResult,
  type HostProcess,
  type RunningCli,
  runCli,
  STACK_TRACE_LINE,
  spawnCli,
} from "../helpers/cli.js";
import { onCleanup, waitFor } from "../helpers/context.js";
import { hostWithCli, makeShare } from "../helpers/share.js";
import { compareTrees, findPartFiles, isAbsent, MiB, makeTree, pseudoRandomBytes } from "../helpers/tree.js";

interface PushFixture {
  base: string;
  share: string;
  host: HostProcess;
  writeLink: string;
  env: CliEnv;
}

/** An empty share hosted with --allow-upload, and a pusher's TELEPORT_HOME. */
async function uploadHost(t: TestContext, label: string, args: string[] = []): Promise<PushFixture> {
  const { base, share } = await makeShare(t, label);
  const host = await hostWithCli(t, { base, share, args: ["--allow-upload", ...args] });
  assert.ok(host.writeLink !== undefined, "the host printed no write link");
  await waitFor(async () => host.stderr().includes("share indexed for uploads") || undefined, {
    what: "the host to index its share",
  });
  return { base, share, host, writeLink: host.writeLink, env: { TELEPORT_HOME: join(base, "pusher-home") } };
}

interface PushJson {
  skipped: { path: string; reason: string }[];
  skippedCount: number;
  files: number;
  bytes: number;
  bytesFromNetwork: number;
  bytesReused: number;
  seconds: number;
  streams?: number;
}

async function pushJson(args: string[], env: CliEnv): Promise<PushJson> {
  const result = await runCli(["push", ...args, "--json"], env, { timeoutMs: 60_000 });
  assert.equal(result.code, 0, `push failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as PushJson;
}

function assertRefused(result: CliResult, code: string): void {
  assert.notEqual(result.code, 0, "the push succeeded");
  assert.match(result.stderr, new RegExp(code));
  assert.doesNotMatch(result.stderr, STACK_TRACE_LINE);
}

test("host --allow-upload prints the read link, then the write link, on stdout and in --link-file", async (t) => {
  const { base, host, writeLink } = await uploadHost(t, "push-links");
  const linkFile = await readFile(join(base, "host-home", "share-link.txt"), "utf8");
  assert.equal(linkFile, `${host.link}\n${writeLink}\n`);
  assert.match(writeLink, /&write=1$/);
  assert.doesNotMatch(host.link, /write=/);
  assert.notEqual(new URL(writeLink).searchParams.get("key"), new URL(host.link).searchParams.get("key"));
});

test("push of a folder reproduces its tree: bytes, modes, mtimes, symlinks, empty folders", async (t) => {
  const { base, share, writeLink, env } = await uploadHost(t, "push-tree");
  const src = join(base, "src");
  const info = await makeTree(src);
  const summary = await pushJson([src, writeLink, "--path", "up/load"], env);
  await compareTrees(src, join(share, "up", "load"), { ignore: info.outsideLinks });
  assert.equal(summary.files, info.files.size);
  assert.equal(summary.bytes, info.totalBytes);
  assert.equal(summary.bytesFromNetwork + summary.bytesReused, summary.bytes);
  assert.ok(summary.seconds > 0);
  assert.deepEqual(await findPartFiles(share), []);
  // The symlinks out of SRC are not pushed, and the push says so.
  assert.equal(summary.skippedCount, info.outsideLinks.length);
  assert.deepEqual(summary.skipped.map((entry) => entry.path).sort(), [...info.outsideLinks].sort());
});

test("push of a file puts it in the share's root, or in --path", async (t) => {
  const { base, share, host, writeLink, env } = await uploadHost(t, "push-file");
  await mkdir(join(base, "local"));
  const file = join(base, "local", "report.bin");
  await writeFile(file, pseudoRandomBytes(3 * MiB + 5, "report"));
  await writeFile(join(base, "local", "beside.txt"), "not pushed\n");
  await pushJson([file, writeLink], env);
  // The host's log line for a push gives what it received.
  await waitFor(async () => /pushed to "\.": 3\.0 MiB received in \d/.test(host.stderr()) || undefined, {
    what: "the host's line for the push",
  });
  await pushJson([file, writeLink, "--path", "inbox"], env);
  assert.deepEqual(await readFile(join(share, "report.bin")), await readFile(file));
  assert.deepEqual(await readFile(join(share, "inbox", "report.bin")), await readFile(file));
  assert.deepEqual((await readdir(share)).sort(), ["inbox", "report.bin"]);
});

test("an upload of a file the host holds under another name sends almost nothing", async (t) => {
  const { base, share } = await makeShare(t, "push-dedup");
  const size = 24 * MiB;
  await writeFile(join(share, "held.bin"), pseudoRandomBytes(size, "held"));
  const host = await hostWithCli(t, { base, share, args: ["--allow-upload"] });
  await waitFor(async () => host.stderr().includes("share indexed for uploads") || undefined, {
    what: "the host to index its share",
  });
  const copy = join(base, "renamed.bin");
  await copyFile(join(share, "held.bin"), copy);
  const summary = await pushJson([copy, host.writeLink as string], { TELEPORT_HOME: join(base, "pusher") });
  assert.equal(summary.bytes, size);
  assert.ok(
    summary.bytesFromNetwork <= size * 0.001,
    `${summary.bytesFromNetwork} bytes crossed the network`,
  );
  assert.deepEqual(await readFile(join(share, "renamed.bin")), await readFile(copy));
});

test("a 1-byte insert pushed again sends at most 1% of the file", async (t) => {
  const { base, share, writeLink, env } = await uploadHost(t, "push-insert");
  const size = 24 * MiB;
  const original = pseudoRandomBytes(size, "insert");
  await mkdir(join(base, "src"));
  const file = join(base, "src", "data.bin");
  await writeFile(file, original);
  const first = await pushJson([file, writeLink], env);
  assert.equal(first.bytesFromNetwork, size);
  const middle = size / 2;
  await writeFile(
    file,
    Buffer.concat([original.subarray(0, middle), Buffer.from("!"), original.subarray(middle)]),
  );
  const second = await pushJson([file, writeLink], env);
  assert.equal(second.bytes, size + 1);
  assert.ok(
    second.bytesFromNetwork <= (size + 1) * 0.01,
    `${second.bytesFromNetwork} bytes crossed the network`,
  );
  assert.deepEqual(await readFile(join(share, "data.bin")), await readFile(file));
});

test("a read link may not push: refused before dialing, and by the host when marked as a write link", async (t) => {
  const { base, share, host, env } = await uploadHost(t, "push-read-link");
  const src = join(base, "src");
  await mkdir(src);
  await writeFile(join(src, "a.txt"), "a\n");
  assertRefused(await runCli(["push", src, host.link], env), ErrorCode.READ_ONLY);
  // The marker is for the pusher's benefit only: the host goes by the secret.
  assertRefused(await runCli(["push", src, `${host.link}&write=1`], env), ErrorCode.READ_ONLY);
  assert.deepEqual(await readdir(share), []);
});

test("a host without --allow-upload refuses a push", async (t) => {
  const { base, share, env } = await makeShare(t, "push-read-only-host");
  const host = await hostWithCli(t, { base, share });
  assert.equal(host.writeLink, undefined);
  const src = join(base, "src");
  await mkdir(src);
  await writeFile(join(src, "a.txt"), "a\n");
  assertRefused(await runCli(["push", src, `${host.link}&write=1`], env), ErrorCode.READ_ONLY);
  assert.deepEqual(await readdir(share), []);
});

test("an upload over --max-upload-bytes is refused, leaving nothing behind", async (t) => {
  const { base, share, writeLink, env } = await uploadHost(t, "push-quota", ["--max-upload-bytes", "1M"]);
  const src = join(base, "src");
  await mkdir(src);
  await mkdir(join(src, "sub", "deeper"), { recursive: true });
  await writeFile(join(src, "small.bin"), pseudoRandomBytes(MiB / 2, "small"));
  await writeFile(join(src, "sub", "deeper", "big.bin"), pseudoRandomBytes(MiB, "big"));
  await symlink(join(src, "sub", "deeper", "big.bin"), join(src, "link-to-big"));
  const refused = await runCli(["push", src, writeLink], env);
  assertRefused(refused, ErrorCode.QUOTA);
  // Refused on what the pusher declared, before the manifest: every file under SRC, a symlink's
  // target not counted again.
  assert.match(refused.stderr, new RegExp(`the upload holds ${MiB / 2 + MiB} bytes`));
  assert.deepEqual(await readdir(share), []);
  assert.ok(await isAbsent(join(share, "src")));
});

test("what --exclude leaves out does not count against --max-upload-bytes", async (t) => {
  const { base, share, writeLink, env } = await uploadHost(t, "push-quota-exclude", [
    "--max-upload-bytes",
    "1M",
  ]);
  const src = join(base, "src");
  await mkdir(join(src, "build"), { recursive: true });
  await writeFile(join(src, "small.bin"), pseudoRandomBytes(MiB / 2, "small"));
  await writeFile(join(src, "build", "big.bin"), pseudoRandomBytes(MiB, "big"));
  const summary = await pushJson([src, writeLink, "--exclude", "/build"], env);
  assert.equal(summary.bytes, MiB / 2);
  assert.deepEqual(await readdir(join(share, "src")), ["small.bin"]);
});

/** Bytes the process has written to any descriptor, its sockets included (/proc/PID/io's wchar). */
async function bytesWritten(pid: number): Promise<number | undefined> {
  const io = await readFile(`/proc/${pid}/io`, "utf8").catch(() => undefined);
  const match = io?.match(/^wchar: (\d+)$/m);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** SIGKILLs `running` once it has written `bytes`; resolves with what it had written by then. */
async function killAfterWriting(running: RunningCli, bytes: number): Promise<number> {
  const pid = running.process.pid as number;
  for (;;) {
    const written = await bytesWritten(pid);
    if (written === undefined || running.process.exitCode !== null)
      throw new Error(`the pusher ended before writing ${bytes} bytes: ${running.stderr()}`);
    if (written >= bytes) {
      running.process.kill("SIGKILL");
      await running.result;
      return written;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The host's pull of an upload is given up (the pusher gone): its log names the push. */
async function uploadEnded(host: HostProcess, count: number): Promise<void> {
  await waitFor(async () => (host.stderr().split("pushed to").length > count ? true : undefined), {
    what: "the host to end the upload",
  });
}

const KILL_SIZE = 64 * MiB;
/** What the host may have been sent and not yet written when the pusher died: its chunk window, twice. */
const IN_FLIGHT_BYTES = 2 * 16 * MiB;

test("a pusher killed with SIGKILL midway and run again sends only what the host lacks", async (t) => {
  const { base, share, host, writeLink, env } = await uploadHost(t, "push-kill-pusher");
  await mkdir(join(base, "src"));
  const file = join(base, "src", "data.bin");
  await writeFile(file, pseudoRandomBytes(KILL_SIZE, "kill-pusher"));
  const doomed = spawnCli(["push", file, writeLink, "--json"], env);
  onCleanup(t, () => doomed.process.kill("SIGKILL"));
  const firstRun = await killAfterWriting(doomed, KILL_SIZE / 2);
  await uploadEnded(host, 1);
  assert.equal((await findPartFiles(share)).length, 1, "the upload in progress is kept");

  const summary = await pushJson([file, writeLink], env);

  assert.deepEqual(await readFile(join(share, "data.bin")), await readFile(file));
  assert.deepEqual(await findPartFiles(share), []);
  assert.ok(summary.bytesReused > 0, "the first run's chunks were kept");
  assert.ok((summary.streams ?? 0) >= 1, "the rest came over the data streams the pusher dialed");
  assert.equal(summary.bytesFromNetwork + summary.bytesReused, KILL_SIZE);
  const sent = firstRun + summary.bytesFromNetwork;
  assert.ok(sent <= KILL_SIZE + IN_FLIGHT_BYTES, `${firstRun} + ${summary.bytesFromNetwork} bytes sent`);
});

test("a host killed with SIGKILL mid-upload and started again: the push run again resumes", async (t) => {
  const { base, share } = await makeShare(t, "push-kill-host");
  const first = await hostWithCli(t, { base, share, args: ["--allow-upload"] });
  await mkdir(join(base, "src"));
  const file = join(base, "src", "data.bin");
  await writeFile(file, pseudoRandomBytes(KILL_SIZE, "kill-host"));
  const env = { TELEPORT_HOME: join(base, "pusher-home") };
  const pushing = spawnCli(["push", file, first.writeLink as string], env);
  onCleanup(t, () => pushing.process.kill("SIGKILL"));
  const pid = pushing.process.pid as number;
  await waitFor(async () => ((await bytesWritten(pid)) ?? 0) >= KILL_SIZE / 2 || undefined, {
    what: "the push to be halfway",
    intervalMs: 1,
  });
  first.process.kill("SIGKILL");
  const failed = await pushing.result;
  assert.notEqual(failed.code, 0);
  assert.equal((await findPartFiles(share)).length, 1, "the upload in progress is kept");

  const linkFile = join(base, "second-link.txt");
  const again = await hostWithCli(t, { base, share, linkFile, args: ["--allow-upload"] });
  assert.equal(again.writeLink?.replace(/:\d+\//, ":/"), first.writeLink?.replace(/:\d+\//, ":/"));
  const summary = await pushJson([file, again.writeLink as string], env);

  assert.deepEqual(await readFile(join(share, "data.bin")), await readFile(file));
  assert.deepEqual(await findPartFiles(share), []);
  assert.ok(summary.bytesReused > 0, "the first run's chunks were kept");
  assert.equal(summary.bytesFromNetwork + summary.bytesReused, KILL_SIZE);
});

test("concurrent uploads to one path: each completes, and the file is one of them whole", async (t) => {
  const { base, share, writeLink, env } = await uploadHost(t, "push-concurrent");
  const versions = ["one", "two", "three"].map((name) => ({
    dir: join(base, name),
    content: pseudoRandomBytes(12 * MiB, name),
  }));
  // One size and one mtime: to the host, one version of the file, which a resume would take up.
  for (const { dir, content } of versions) {
    await mkdir(dir);
    await writeFile(join(dir, "same.bin"), content);
    await utimes(join(dir, "same.bin"), 1_600_000_000, 1_600_000_000);
  }
  const pushes = versions.map(({ dir }, at) =>
    runCli(["push", join(dir, "same.bin"), writeLink, "--json"], {
      TELEPORT_HOME: `${env.TELEPORT_HOME}-${at}`,
    }),
  );
  for (const result of await Promise.all(pushes)) assert.equal(result.code, 0, result.stderr);
  const landed = await readFile(join(share, "same.bin"));
  assert.ok(
    versions.some(({ content }) => content.equals(landed)),
    "the file is none of the versions pushed",
  );
  assert.deepEqual(await findPartFiles(share), []);
  assert.deepEqual(await readdir(share), ["same.bin"]);
});
