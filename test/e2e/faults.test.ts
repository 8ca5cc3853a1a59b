/**
 * Pulls that go wrong, through the real CLI: a host killed in the middle of a transfer, a host
 * that is not there or stops answering, unreadable files, a full disk, kills of the pull itself
 * (bytes corrupted by the host are in test/integration/faults.test.ts). Each must fail with its
 * typed error and leave no file behind, not even a partial one.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, openSync, writeSync } from "node:fs";
import { chmod, chown, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { CLI_PATH, runCli, STACK_TRACE_LINE, spawnCli, startHost } from "../helpers/cli.js";
import { NO_HANG_TIMEOUT_MS, onCleanup, tempDir, waitFor } from "../helpers/context.js";
import { holdPort, linkToPort } from "../helpers/ports.js";
import { hostInProcess, hostWithCli, makeShare } from "../helpers/share.js";
import {
  compareTrees,
  findPartFiles,
  isAbsent,
  MiB,
  pseudoRandomBytes,
  writeRandomFile,
} from "../helpers/tree.js";

test("a host killed mid-pull makes the pull fail with a connection error and leaves no partial file", {
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const { base, share } = await makeShare(t, "killed");
  const dest = join(base, "dest");
  await writeRandomFile(join(share, "large.bin"), 512 * MiB);
  const host = await hostWithCli(t, { base, share });

  // One retry: it finds no host either, and the pull gives up.
  const puller = spawnCli(["pull", host.link, dest, "--no-progress", "--retries", "1"], {
    TELEPORT_HOME: join(base, "client-home"),
  });
  let pullExited = false;
  puller.result.then(
    () => {
      pullExited = true;
    },
    () => {},
  );
  onCleanup(t, async () => {
    if (!pullExited) puller.process.kill("SIGKILL");
    await puller.result.catch(() => {});
  });

  await waitFor(
    async () => {
      if (pullExited) throw new Error(`pull exited before the host was killed: ${puller.stderr()}`);
      return (await findPartFiles(dest)).length > 0;
    },
    { what: "the pull to start writing large.bin", timeoutMs: 20_000, intervalMs: 5 },
  );
  host.process.kill("SIGKILL");
  await host.exited;

  // A pull that never notices is failed by the test timeout (and killed by the cleanup).
  const result = await puller.result;
  assert.equal(result.signal, null, "the pull exits by itself");
  assert.notEqual(result.code, 0, "pull must fail when its host dies");
  assert.match(result.stderr, /TELEPORT_ERR_(CONNECTION|TIMEOUT)/);
  assert.match(result.stderr, /resuming in 0\.5 s \(retry 1 of 1\)/);
  assert.doesNotMatch(result.stderr, STACK_TRACE_LINE, "the CLI must not print a stack trace");
  assert.ok(await isAbsent(join(dest, "large.bin")), "an incomplete file must not be committed");
  assert.deepEqual(await findPartFiles(dest), [], "temporary files must be removed");
});

test("a host killed with SIGKILL mid-pull and started again: the pull reconnects and resumes", {
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const { base, share } = await makeShare(t, "restarted");
  const dest = join(base, "dest");
  const hostHome = join(base, "host-home");
  const size = 256 * MiB;
  await writeRandomFile(join(share, "large.bin"), size);
  const first = await startHost(share, { home: hostHome });
  onCleanup(t, () => first.stop());
  // The pull goes through a port the test holds, so the restarted host is found at the same
  // address without assuming its old port is still free.
  const front = await holdPort(t);
  front.forwardTo(Number(new URL(first.link).port));
  const link = linkToPort(first.link, front.port);

  const puller = spawnCli(["pull", link, dest, "--no-progress", "--json"], {
    TELEPORT_HOME: join(base, "client-home"),
  });
  onCleanup(t, async () => {
    puller.process.kill("SIGKILL");
    await puller.result.catch(() => {});
  });
  await waitFor(async () => (await findResumableBytes(dest)) > 16 * MiB, {
    what: "the pull to be well into large.bin",
    timeoutMs: 30_000,
    intervalMs: 5,
  });
  front.forwardTo(undefined);
  first.process.kill("SIGKILL");
  await first.exited;

  // Same identity and folder: the same fingerprint and secret.
  // Its own link file: the first host's, naming the old port, is still there.
  const second = await startHost(share, { home: hostHome, linkFile: join(base, "second-link.txt") });
  onCleanup(t, () => second.stop());
  assert.equal(linkToPort(second.link, front.port), link);
  front.forwardTo(Number(new URL(second.link).port));

  const result = await puller.result;
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /TELEPORT_ERR_(CONNECTION|TIMEOUT).*resuming in/);
  const summary = JSON.parse(result.stdout.trim().split("\n").at(-1) ?? "{}");
  assert.ok(summary.attempts >= 2, `attempts: ${summary.attempts}`);
  assert.ok(
    summary.bytesFromNetwork < size,
    `the last run fetched ${summary.bytesFromNetwork} bytes: it resumed nothing`,
  );
  assert.ok(summary.reused.resumed > 0, "the last run resumed the interrupted file");
  assert.deepEqual(await fileHash(join(dest, "large.bin")), await fileHash(join(share, "large.bin")));
  assert.deepEqual(await findPartFiles(dest), []);
});

/** Bytes in the temporary files under `dir` (resumable or not). */
async function findResumableBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await findPartFiles(dir)) {
    total += (await stat(join(dir, name)).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

async function fileHash(path: string): Promise<string> {
  return createHash("sha256")
    .update(await readFile(path))
    .digest("hex");
}

test("pulling from a link whose host is not running fails with TELEPORT_ERR_CONNECTION", {
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const { base, share } = await makeShare(t, "no-host");
  const dest = join(base, "dest");
  await writeFile(join(share, "a.txt"), "hello\n");
  const host = await startHost(share, { home: join(base, "host-home") });
  await host.stop();
  const refusing = await holdPort(t);

  const result = await runCli(["pull", linkToPort(host.link, refusing.port), dest, "--no-progress"], {
    TELEPORT_HOME: join(base, "client-home"),
  });

  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /TELEPORT_ERR_CONNECTION/);
  assert.doesNotMatch(result.stderr, STACK_TRACE_LINE);
  assert.ok((await isAbsent(dest)) || (await readdir(dest)).length === 0, "nothing may be written");
});

test("files and folders the host cannot read are reported, the rest is pulled, and the exit code says so", async (t) => {
  // Root reads everything: the host then runs as nobody, for whom mode 000 means no.
  const asRoot = process.getuid?.() === 0;
  const wrapper = asRoot ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : [];
  if (asRoot) {
    const probe = spawnSync(wrapper[0] as string, [
      ...wrapper.slice(1),
      process.execPath,
      CLI_PATH,
      "--help",
    ]);
    if (probe.status !== 0) {
      t.skip(`running as root and cannot run the host as nobody here: ${probe.error ?? probe.stderr}`);
      return;
    }
  }
  const base = await tempDir(t, "unreadable");
  await chmod(base, 0o755);
  const share = join(base, "share");
  const hostHome = join(base, "host-home");
  await mkdir(join(share, "open"), { recursive: true });
  await mkdir(join(share, "locked"));
  await mkdir(hostHome);
  if (asRoot) await chown(hostHome, 65534, 65534);
  await writeFile(join(share, "a.txt"), "readable\n");
  await writeFile(join(share, "open", "b.txt"), "also readable\n");
  await writeFile(join(share, "locked", "inner.txt"), "behind a locked folder\n");
  await writeFile(join(share, "secret.txt"), "unreadable\n");
  await writeFile(join(share, "large-secret.bin"), pseudoRandomBytes(5 * MiB, "large-secret"));
  for (const path of ["secret.txt", "large-secret.bin", "locked"]) await chmod(join(share, path), 0);
  onCleanup(t, () => chmod(join(share, "locked"), 0o755)); // so that the folder can be removed

  const host = await startHost(share, { home: hostHome, wrapper });
  onCleanup(t, () => host.stop());
  const dest = join(base, "dest");
  const result = await runCli(["pull", host.link, dest, "--no-progress", "--json"], {
    TELEPORT_HOME: join(base, "client-home"),
  });

  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /TELEPORT_ERR_PARTIAL: 3 of the entries could not be read on the host/);
  for (const path of ["secret.txt", "large-secret.bin", "locked"]) {
    assert.match(result.stderr, new RegExp(`not pulled: "${path}": TELEPORT_ERR_PERMISSION`));
  }
  assert.doesNotMatch(result.stderr, STACK_TRACE_LINE);
  const summary = JSON.parse(result.stdout.trim().split("\n").at(-1) ?? "{}");
  assert.equal(summary.failureCount, 3);
  assert.deepEqual(summary.failures.map((failure: { path: string }) => failure.path).sort(), [
    "large-secret.bin",
    "locked",
    "secret.txt",
  ]);
  assert.equal(await readFile(join(dest, "a.txt"), "utf8"), "readable\n");
  assert.equal(await readFile(join(dest, "open", "b.txt"), "utf8"), "also readable\n");
  assert.deepEqual(await readdir(join(dest, "locked")), [], "the locked folder is created, empty");
  assert.ok(await isAbsent(join(dest, "secret.txt")));
  assert.ok(await isAbsent(join(dest, "large-secret.bin")));
  assert.deepEqual(await findPartFiles(dest), []);
});

test("a host that stops (SIGSTOP) mid-pull is given up on after the idle timeout: a clear error, no hang", {
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const { base, share } = await makeShare(t, "stalled");
  const dest = join(base, "dest");
  await writeRandomFile(join(share, "large.bin"), 256 * MiB);
  const host = await startHost(share, { home: join(base, "host-home") });
  onCleanup(t, async () => {
    host.process.kill("SIGCONT");
    await host.stop();
  });

  const puller = spawnCli(["pull", host.link, dest, "--no-progress", "--timeout", "1.5", "--retries", "1"], {
    TELEPORT_HOME: join(base, "client-home"),
  });
  onCleanup(t, async () => {
    puller.process.kill("SIGKILL");
    await puller.result.catch(() => {});
  });
  await waitFor(async () => (await findResumableBytes(dest)) > 0, {
    what: "the pull to start writing large.bin",
    timeoutMs: 30_000,
    intervalMs: 5,
  });
  host.process.kill("SIGSTOP");

  // 1.5 s of silence, a 0.5 s wait, then a connection that never completes its handshake; a
  // pull that never gives up is failed by the test timeout.
  const result = await puller.result;
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /TELEPORT_ERR_TIMEOUT/);
  assert.match(result.stderr, /resuming in 0\.5 s \(retry 1 of 1\)/);
  assert.doesNotMatch(result.stderr, STACK_TRACE_LINE);
  assert.ok(await isAbsent(join(dest, "large.bin")), "an incomplete file must not be committed");
});

test("a file rewritten on the host while it is pulled is fetched again as it now is, never a mix", async (t) => {
  const { base, share } = await makeShare(t, "changed");
  const dest = join(base, "dest");
  const size = 64 * MiB;
  await writeRandomFile(join(share, "moving.bin"), size);
  const rewritten = pseudoRandomBytes(size, "rewritten");
  let served = 0;
  // In place, same size, a quarter of the way into serving it: only the chunks' hashes can tell.
  const host = await hostInProcess(t, {
    base,
    share,
    faults: {
      beforeChunk: async (request) => {
        served += request.size;
        if (served >= size / 4 && served - request.size < size / 4) {
          const fd = openSync(join(share, "moving.bin"), "r+");
          writeSync(fd, rewritten, 0, size, 0);
          closeSync(fd);
        }
      },
    },
  });

  const result = await runCli(["pull", host.url, dest, "--no-progress", "--json"], {
    TELEPORT_HOME: join(base, "client-home"),
  });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /TELEPORT_ERR_(CHUNK_CORRUPT|FILE_CHANGED).*resuming in/);
  assert.ok(
    (await readFile(join(dest, "moving.bin"))).equals(rewritten),
    "the file is the new version, whole",
  );
  assert.deepEqual(await findPartFiles(dest), []);
});

test("a pull killed with SIGKILL 20 times at random moments, then run to the end: identical output, nothing left behind", async (t) => {
  const { base, share } = await makeShare(t, "kill-20");
  const dest = join(base, "dest");
  await mkdir(join(share, "small"), { recursive: true });
  await mkdir(join(share, "medium"));
  await writeFile(join(share, "large.bin"), pseudoRandomBytes(32 * MiB, "kill-20-large"));
  for (let i = 0; i < 200; i++) {
    await writeFile(join(share, "small", `${i}.txt`), pseudoRandomBytes(10_000, `kill-20-small-${i}`));
  }
  for (let i = 0; i < 5; i++) {
    await writeFile(join(share, "medium", `${i}.bin`), pseudoRandomBytes(MiB + i, `kill-20-medium-${i}`));
  }
  // Slowed down (~6 MiB/s) so that the kills land all through the pull; counted, so each kill
  // waits for its run to be receiving chunks.
  let served = 0;
  const host = await hostInProcess(t, {
    base,
    share,
    faults: {
      beforeChunk: async () => {
        served++;
        await new Promise((resolve) => setTimeout(resolve, 20));
      },
    },
  });
  const env = { TELEPORT_HOME: join(base, "client-home") };

  const random = pseudoRandomBytes(20, "kill-20-moments");
  let killedMidTransfer = 0;
  for (let kill = 0; kill < 20; kill++) {
    const servedBefore = served;
    const doomed = spawnCli(["pull", host.url, dest, "--no-progress"], env);
    onCleanup(t, () => doomed.process.kill("SIGKILL"));
    let exited = false;
    void doomed.result.finally(() => {
      exited = true;
    });
    // Killed once its run has been served 1 to 4 chunks, or when it is done.
    const chunks = 1 + ((random[kill] as number) % 4);
    await waitFor(() => exited || served >= servedBefore + chunks, {
      what: `pull ${kill + 1} to be served ${chunks} chunks`,
      timeoutMs: 30_000,
      intervalMs: 1,
    });
    doomed.process.kill("SIGKILL");
    const result = await doomed.result;
    if (result.signal === "SIGKILL" && served > servedBefore) killedMidTransfer++;
  }
  assert.ok(
    killedMidTransfer >= 10,
    `only ${killedMidTransfer} of 20 kills landed while chunks were being served`,
  );

  const final = await runCli(["pull", host.url, dest, "--no-progress", "--json"], env);
  assert.equal(final.code, 0, final.stderr);
  await compareTrees(share, dest);
  assert.deepEqual(await findPartFiles(dest), [], "no temporary file is left after the run that completed");

  // The index agrees with what is on disk: a re-pull finds every file complete.
  const again = await runCli(["pull", host.url, dest, "--no-progress", "--json"], env);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout).bytesFromNetwork, 0);
  const stats = await runCli(["store", "stats", "--json"], env);
  assert.equal(stats.code, 0, stats.stderr);
  const index = JSON.parse(stats.stdout) as { files: number; downloads: number; bytes: number };
  assert.equal(index.downloads, 0, "no download is still recorded as in progress");
  // The 10 kB files are below the size the index records; the large and medium ones, once each.
  assert.equal(index.files, 6, stats.stdout);
  assert.equal(index.bytes, 32 * MiB + 5 * MiB + 10, stats.stdout);
});

test("a full disk fails the pull with TELEPORT_ERR_NO_SPACE, nothing under the final name; with room, the rerun completes", async (t) => {
  const { base, share } = await makeShare(t, "disk-full");
  const dest = join(base, "small-disk");
  await mkdir(dest);
  await writeFile(join(share, "a.txt"), "fits\n");
  await writeRandomFile(join(share, "large.bin"), 24 * MiB);
  // A 12 MiB file system of its own: root only (a loop or tmpfs mount).
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=12m", "tmpfs", dest]);
  if (mounted.status !== 0) {
    t.skip(`cannot mount a small tmpfs here (root only): ${mounted.error ?? mounted.stderr}`);
    return;
  }
  onCleanup(t, () => {
    // A mount left behind would outlive the run (and keep its temp folder): say so loudly.
    const unmounted = spawnSync("umount", [dest]);
    if (unmounted.status !== 0 && spawnSync("umount", ["--lazy", dest]).status !== 0)
      throw new Error(`could not unmount the tmpfs at ${dest}: ${unmounted.stderr}`);
  });
  const host = await hostWithCli(t, { base, share });
  const env = { TELEPORT_HOME: join(base, "client-home") };

  const full = await runCli(["pull", host.link, dest, "--no-progress"], env);
  assert.equal(full.code, 1, full.stderr);
  assert.match(full.stderr, /TELEPORT_ERR_NO_SPACE/);
  assert.match(full.stderr, /hint: free some space/);
  assert.doesNotMatch(full.stderr, STACK_TRACE_LINE);
  assert.ok(await isAbsent(join(dest, "large.bin")), "no partial file under the final name");

  assert.equal(spawnSync("mount", ["-o", "remount,size=64m", dest]).status, 0);
  const rerun = await runCli(["pull", host.link, dest, "--no-progress", "--json"], env);
  assert.equal(rerun.code, 0, rerun.stderr);
  await compareTrees(share, dest);
  assert.deepEqual(await findPartFiles(dest), []);
});
