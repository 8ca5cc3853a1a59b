/**
 * A mount stays alive and never hangs its readers: with the host gone reads fail with EIO by
 * --timeout and succeed again once the host is back on the same port; a reader killed while its
 * request waits is let go at once (FUSE_INTERRUPT); SIGINT unmounts, and a signal while it
 * finishes does not cut its cache short; `teleport umount` works
 * with a file still open (the mount process exits once it is closed), after the mount process
 * was killed, and with --force on a hung mount. Skips where this machine cannot mount.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { runCli, startHost } from "../helpers/cli.js";
import { NO_HANG_TIMEOUT_MS, onCleanup, waitFor } from "../helpers/context.js";
import { cannotMount, hostAndMount, isMounted, linkPort, readAt, startMount } from "../helpers/mount.js";
import { FIXTURE } from "../helpers/tree.js";

const skip = cannotMount();

/** Resolves with the process's exit once it has ended; `what` names it for a timeout. */
function exited(child: ReturnType<typeof spawn>): Promise<number | string> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null)
      resolve(child.exitCode ?? child.signalCode ?? "");
    child.once("exit", (code, signal) => resolve(code ?? signal ?? ""));
  });
}

/** Whether process `pid` sleeps in the kernel waiting for a FUSE answer. */
async function waitsOnFuse(pid: number): Promise<boolean> {
  const wchan = await readFile(`/proc/${pid}/wchan`, "utf8").catch(() => "");
  return wchan.includes("fuse") || wchan === "request_wait_answer";
}

test("host killed: reads are EIO by --timeout, and read again once it is back on its port", {
  skip,
  timeout: NO_HANG_TIMEOUT_MS * 2,
}, async (t) => {
  const { share, host, hostHome, mountpoint } = await hostAndMount(t, ["--timeout", "2"]);
  const expected = await readFile(join(share, FIXTURE.manyChunks));
  assert.ok((await readFile(join(mountpoint, FIXTURE.spaces))).length > 0);
  host.process.kill("SIGKILL");
  await host.exited;

  const started = performance.now();
  await assert.rejects(readAt(join(mountpoint, FIXTURE.manyChunks), 0, 4096), { code: "EIO" });
  const seconds = (performance.now() - started) / 1000;
  assert.ok(seconds >= 1.5 && seconds < 10, `EIO after ${seconds} s with --timeout 2`);

  const back = await startHost(share, { home: hostHome, port: linkPort(host.link) });
  onCleanup(t, () => back.stop());
  assert.equal(back.link, host.link, "the restarted host keeps its link");
  const read = await waitFor(() => readFile(join(mountpoint, FIXTURE.manyChunks)).catch(() => undefined), {
    what: "reads to resume once the host is back",
    timeoutMs: 30_000,
    intervalMs: 200,
  });
  assert.ok(read.equals(expected));
});

test("a reader killed while its request waits on a silent host is let go at once", {
  skip,
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  // A 1 s TTL and a stopped host: the next lookup waits for a listing that never comes.
  const { host, mountpoint } = await hostAndMount(t, ["--no-watch", "--ttl", "1", "--timeout", "60"]);
  await stat(join(mountpoint, FIXTURE.spaces));
  host.process.kill("SIGSTOP");
  onCleanup(t, () => host.process.kill("SIGCONT"));
  const path = join(mountpoint, FIXTURE.spaces);
  const reader = spawn("sh", ["-c", `while :; do stat "$0" >/dev/null 2>&1; done`, path], {
    stdio: "ignore",
  });
  onCleanup(t, () => reader.kill("SIGKILL"));
  const pid = reader.pid ?? 0;
  // The loop's stat blocks once the TTL passes; find the stat, a child of the shell.
  const stuck = await waitFor(
    async () => {
      const children = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "");
      for (const child of children.trim().split(/\s+/).filter(Boolean))
        if (await waitsOnFuse(Number(child))) return Number(child);
      return undefined;
    },
    { what: "stat to wait on the mount", timeoutMs: 20_000, intervalMs: 50 },
  );
  reader.kill("SIGKILL");
  const started = performance.now();
  process.kill(stuck, "SIGKILL");
  await waitFor(async () => (await readFile(`/proc/${stuck}/stat`, "utf8").catch(() => "gone")) === "gone", {
    what: "the killed stat to be gone",
    timeoutMs: 10_000,
  });
  const seconds = (performance.now() - started) / 1000;
  assert.ok(seconds < 5, `a killed reader took ${seconds} s to go (the request deadline is 60 s)`);
});

test("umount with a file still open: the reader reads on, the mount exits once it closes", {
  skip,
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const { share, mountpoint, env, mount } = await hostAndMount(t);
  const expected = await readFile(join(share, FIXTURE.manyChunks));
  const file = await open(join(mountpoint, FIXTURE.manyChunks), "r");
  onCleanup(t, () => file.close().catch(() => {}));
  const head = Buffer.alloc(4096);
  await file.read(head, 0, head.length, 0);
  assert.ok(head.equals(expected.subarray(0, 4096)));

  const umount = await runCli(["umount", mountpoint], env);
  assert.equal(umount.code, 0, umount.stderr);
  assert.equal(await isMounted(mountpoint), false, "detached from the namespace at once");
  const tail = Buffer.alloc(100_000);
  const { bytesRead } = await file.read(tail, 0, tail.length, expected.length - tail.length);
  assert.equal(bytesRead, tail.length);
  assert.ok(tail.equals(expected.subarray(expected.length - tail.length)), "the open file reads on");
  assert.equal(mount.process.exitCode, null, "the mount process serves the open file");

  await file.close();
  const result = await mount.result;
  assert.equal(result.code, 0, result.stderr);
});

test("SIGINT unmounts and exits 0", { skip }, async (t) => {
  const { mountpoint, mount } = await hostAndMount(t);
  assert.equal(await isMounted(mountpoint), true);
  mount.process.kill("SIGINT");
  const result = await mount.result;
  assert.equal(result.code, 0, result.stderr);
  assert.equal(await isMounted(mountpoint), false);
});

test("a SIGTERM while the mount finishes is not the end of it: what it cached is kept", {
  skip,
}, async (t) => {
  const { share, host, mountpoint, env, mount } = await hostAndMount(t);
  const expected = await readFile(join(share, FIXTURE.manyChunks));
  assert.ok((await readFile(join(mountpoint, FIXTURE.manyChunks))).equals(expected));
  mount.process.kill("SIGTERM");
  // The kernel has let go: the process is closing its pool, its connection and its cache.
  await waitFor(async () => !(await isMounted(mountpoint)), { what: "the unmount", intervalMs: 5 });
  if (mount.process.exitCode === null) mount.process.kill("SIGTERM");
  const first = await mount.result;
  // Its last line comes once the cache is closed: the signal did not cut the finish short. (A
  // signal after that line, while the process exits, may still end it: nothing is left to lose.)
  assert.match(first.stderr, /chunks from the host: [1-9]/);

  const again = await startMount(t, host.link, mountpoint, env);
  assert.ok((await readFile(join(mountpoint, FIXTURE.manyChunks))).equals(expected));
  again.process.kill("SIGTERM");
  const second = await again.result;
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /chunks from the host: 0 /, "the remount reads the cache");
});

test("a mount whose process was killed is ENOTCONN until `teleport umount` clears it", {
  skip,
}, async (t) => {
  const { mountpoint, env, mount } = await hostAndMount(t);
  mount.process.kill("SIGKILL");
  await mount.result;
  await assert.rejects(stat(join(mountpoint, FIXTURE.spaces)), { code: "ENOTCONN" });
  const umount = await runCli(["umount", mountpoint], env);
  assert.equal(umount.code, 0, umount.stderr);
  assert.equal(await isMounted(mountpoint), false);
});

test("umount --force ends a hung mount: its waiting reader fails at once", {
  skip,
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const { mountpoint, env, mount } = await hostAndMount(t, ["--timeout", "60"]);
  mount.process.kill("SIGSTOP");
  onCleanup(t, () => mount.process.kill("SIGCONT"));
  const reader = spawn("cat", [join(mountpoint, FIXTURE.manyChunks)], { stdio: "ignore" });
  onCleanup(t, () => reader.kill("SIGKILL"));
  const pid = reader.pid ?? 0;
  await waitFor(() => waitsOnFuse(pid), { what: "cat to wait on the hung mount", timeoutMs: 20_000 });
  const umount = await runCli(["umount", "--force", mountpoint], env);
  assert.equal(umount.code, 0, umount.stderr);
  assert.notEqual(await exited(reader), 0, "the reader failed");
  assert.equal(await isMounted(mountpoint), false);
});
