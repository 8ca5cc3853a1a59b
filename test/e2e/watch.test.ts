/**
 * `pull --watch` through the real CLI: a host process watching its share, a client process
 * keeping its destination a mirror. Latency is the benchmark's (bench/watch-latency.ts); here
 * each change must arrive, whole, within a generous bound, and nothing outside DEST be touched.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { Feature } from "../../src/wire/messages.js";
import { type CliEnv, type RunningCli, spawnCli, startHost } from "../helpers/cli.js";
import { NO_HANG_TIMEOUT_MS, onCleanup, tempDir, waitFor } from "../helpers/context.js";
import { dirEntry, hostile, startHostileHost } from "../helpers/hostile-host.js";
import { hostWithCli, makeShare } from "../helpers/share.js";
import { isAbsent, MiB, pseudoRandomBytes, writeRandomFile } from "../helpers/tree.js";

/** What `pull --watch --json` prints: a line per sync and per batch of changes. */
type WatchLine =
  | { type: "sync"; reason: string; files: number; bytesFromNetwork: number }
  | { type: "changes"; changed: string[]; removed: string[]; bytesFromNetwork: number; bytesReused: number };

interface Watcher {
  cli: RunningCli;
  lines(): WatchLine[];
}

const ARRIVES_MS = 20_000;

/** `pull LINK DEST --watch --json`, stopped (SIGINT) when the test ends; resolves once synced. */
async function startWatch(
  t: TestContext,
  link: string,
  dest: string,
  env: CliEnv,
  args: string[] = [],
): Promise<Watcher> {
  const cli = spawnCli(["pull", link, dest, "--watch", "--json", ...args], env);
  let exited = false;
  cli.result.then(
    () => {
      exited = true;
    },
    () => {},
  );
  onCleanup(t, async () => {
    if (!exited) cli.process.kill("SIGKILL");
    await cli.result.catch(() => {});
  });
  const lines = () =>
    cli
      .stdout()
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as WatchLine);
  await waitFor(
    () => {
      if (exited) throw new Error(`pull --watch exited: ${cli.stderr()}`);
      return lines().some((line) => line.type === "sync");
    },
    { what: "the first sync", timeoutMs: ARRIVES_MS },
  );
  return { cli, lines };
}

/** Whether the client pulled the whole watched path again after its first sync. */
function resynced(watcher: Watcher): boolean {
  return watcher.lines().some((line) => line.type === "sync" && line.reason !== "start");
}

function changeLines(watcher: Watcher): Extract<WatchLine, { type: "changes" }>[] {
  return watcher.lines().filter((line) => line.type === "changes");
}

async function contentIs(path: string, expected: string | Buffer): Promise<boolean> {
  const bytes = await readFile(path).catch(() => undefined);
  return bytes?.equals(Buffer.from(expected)) === true;
}

test("an edit, a new file and a removal reach DEST; nothing outside it is touched; Ctrl-C exits 130", {
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const { base, share, env } = await makeShare(t, "watch-edit", {
    "notes.txt": "line one\n",
    "sub/old.txt": "old\n",
  });
  const outside = join(base, "outside.txt");
  await writeFile(outside, "not the share's\n");
  const outsideBefore = await stat(outside);
  const host = await hostWithCli(t, { base, share });
  const dest = join(base, "dest");
  const watcher = await startWatch(t, host.link, dest, env);
  assert.equal(await readFile(join(dest, "notes.txt"), "utf8"), "line one\n");

  await writeFile(join(share, "notes.txt"), "line one\nline two\n");
  await waitFor(() => contentIs(join(dest, "notes.txt"), "line one\nline two\n"), {
    what: "the edit in DEST",
    timeoutMs: ARRIVES_MS,
  });
  await writeFile(join(share, "sub", "new.txt"), "new\n");
  await rm(join(share, "sub", "old.txt"));
  await waitFor(
    async () =>
      (await contentIs(join(dest, "sub", "new.txt"), "new\n")) && isAbsent(join(dest, "sub", "old.txt")),
    { what: "the new file in DEST and the removed one gone", timeoutMs: ARRIVES_MS },
  );
  // The batch's line is printed once its removals are done, so it may trail DEST's state a little.
  // (A watcher that lost events under load makes the client resync instead: no changes line.)
  await waitFor(
    () => resynced(watcher) || changeLines(watcher).some((line) => line.removed.includes("sub/old.txt")),
    { what: "the removal's line", timeoutMs: ARRIVES_MS },
  );

  assert.deepEqual((await readdir(base)).sort(), [
    "client-home",
    "dest",
    "host-home",
    "outside.txt",
    "share",
  ]);
  const outsideAfter = await stat(outside);
  assert.equal(outsideAfter.mtimeMs, outsideBefore.mtimeMs);
  assert.equal(await readFile(outside, "utf8"), "not the share's\n");

  watcher.cli.process.kill("SIGINT");
  const result = await watcher.cli.result;
  assert.equal(result.code, 130, result.stderr);
  assert.match(result.stderr, /TELEPORT_ERR_CANCELLED/);
});

test("a renamed 32 MiB file arrives under its new name from local chunks, ~0 bytes from the network", {
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const { base, share, env } = await makeShare(t, "watch-rename");
  const size = 32 * MiB;
  await writeRandomFile(join(share, "video.bin"), size);
  const host = await hostWithCli(t, { base, share });
  const dest = join(base, "dest");
  const watcher = await startWatch(t, host.link, dest, env);

  await rename(join(share, "video.bin"), join(share, "renamed.bin"));
  await waitFor(async () => (await stat(join(dest, "renamed.bin")).catch(() => undefined))?.size === size, {
    what: "renamed.bin in DEST",
    timeoutMs: ARRIVES_MS,
  });
  await waitFor(() => isAbsent(join(dest, "video.bin")), { what: "video.bin gone", timeoutMs: ARRIVES_MS });
  // The batch's line comes once all of it is in place.
  const batches = await waitFor(
    () => {
      const lines = changeLines(watcher).filter((line) => line.changed.includes("renamed.bin"));
      return lines.length > 0 && lines;
    },
    { what: "the rename's line", timeoutMs: ARRIVES_MS },
  );
  assert.equal(batches.length, 1, JSON.stringify(watcher.lines()));
  const moved = batches[0]?.bytesFromNetwork ?? size;
  assert.ok(moved <= size / 1000, `${moved} bytes of a renamed ${size}-byte file came from the network`);
  assert.ok(
    (await readFile(join(dest, "renamed.bin"))).equals(await readFile(join(share, "renamed.bin"))),
    "renamed.bin is the host's bytes",
  );
});

test("1,000 files created in a burst arrive in one batch", { timeout: NO_HANG_TIMEOUT_MS }, async (t) => {
  const { base, share, env } = await makeShare(t, "watch-burst", { "burst/keep.txt": "kept\n" });
  const host = await hostWithCli(t, { base, share });
  const dest = join(base, "dest");
  const watcher = await startWatch(t, host.link, dest, env);

  const names = Array.from({ length: 1000 }, (_, i) => `f${String(i).padStart(4, "0")}.txt`);
  // As fast as a program writes them (tar, cp -r): a burst is a burst.
  for (const name of names) writeFileSync(join(share, "burst", name), `${name}\n`);
  await waitFor(async () => (await readdir(join(dest, "burst"))).length === names.length + 1, {
    what: "1,000 files in DEST",
    timeoutMs: ARRIVES_MS,
  });
  const batches = await waitFor(() => changeLines(watcher).length > 0 && changeLines(watcher), {
    what: "the burst's line",
    timeoutMs: ARRIVES_MS,
  });
  if (resynced(watcher)) {
    // The watcher lost events (a loaded machine): the burst came by a resync, whole, not in batches.
    t.diagnostic("the host's watcher lost events; the burst arrived by a resync");
  } else {
    assert.equal(batches.length, 1, `batches: ${batches.map((line) => line.changed.length).join(", ")}`);
    assert.equal(batches[0]?.changed.length, names.length, JSON.stringify(batches[0]).slice(0, 300));
  }
  assert.equal(await readFile(join(dest, "burst", "f0999.txt"), "utf8"), "f0999.txt\n");
});

test("a file written slowly in pieces arrives only complete, never half-written at its name", {
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const { base, share, env } = await makeShare(t, "watch-slow");
  const host = await hostWithCli(t, { base, share });
  const dest = join(base, "dest");
  await startWatch(t, host.link, dest, env);

  const whole = pseudoRandomBytes(2 * MiB, "slow");
  const seenSizes = new Set<number>();
  let writing = true;
  const watching = (async () => {
    while (writing) {
      const size = (await stat(join(dest, "slow.bin")).catch(() => undefined))?.size;
      if (size !== undefined) seenSizes.add(size);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  // 32 pieces 40 ms apart: each pause well inside the host's settle time.
  const handle = await open(join(share, "slow.bin"), "w");
  const piece = whole.length / 32;
  for (let offset = 0; offset < whole.length; offset += piece) {
    await handle.write(whole, offset, piece, offset);
    await new Promise((resolve) => setTimeout(resolve, 40));
  }
  await handle.close();
  await waitFor(() => contentIs(join(dest, "slow.bin"), whole), {
    what: "slow.bin whole in DEST",
    timeoutMs: ARRIVES_MS,
  });
  writing = false;
  await watching;
  assert.deepEqual(
    [...seenSizes].filter((size) => size !== whole.length),
    [],
  );
});

test("a host killed and restarted: the client resyncs what changed meanwhile and keeps watching", {
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const { base, share, env } = await makeShare(t, "watch-restart", {
    "a.txt": "first\n",
    "doomed.txt": "to be removed while the host is down\n",
  });
  const home = join(base, "host-home");
  const first = await startHost(share, { home });
  onCleanup(t, () => first.stop());
  const port = Number(new URL(first.link).port);
  const dest = join(base, "dest");
  const watcher = await startWatch(t, first.link, dest, env);

  first.process.kill("SIGKILL");
  await first.exited;
  await writeFile(join(share, "a.txt"), "changed while the host was down\n");
  await rm(join(share, "doomed.txt"));
  const second = await startHost(share, { home, port });
  onCleanup(t, () => second.stop());
  assert.equal(second.link, first.link, "the same identity, port and secret");

  await waitFor(
    async () =>
      (await contentIs(join(dest, "a.txt"), "changed while the host was down\n")) &&
      isAbsent(join(dest, "doomed.txt")),
    { what: "the resync after the restart", timeoutMs: ARRIVES_MS },
  );
  // The sync's line is printed once it is done, so it may trail DEST's state a little.
  await waitFor(() => watcher.lines().some((line) => line.type === "sync" && line.reason === "reconnect"), {
    what: "the reconnect's sync line",
    timeoutMs: ARRIVES_MS,
  });
  await writeFile(join(share, "after.txt"), "watched again\n");
  await waitFor(() => contentIs(join(dest, "after.txt"), "watched again\n"), {
    what: "a change after the restart",
    timeoutMs: ARRIVES_MS,
  });
});

test("a client stopped while the folder changes (a laptop asleep) catches up when it resumes", {
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const { base, share, env } = await makeShare(t, "watch-sleep", { "a.txt": "before\n", "gone.txt": "x\n" });
  const host = await hostWithCli(t, { base, share });
  const dest = join(base, "dest");
  const watcher = await startWatch(t, host.link, dest, env, ["--timeout", "2"]);

  watcher.cli.process.kill("SIGSTOP");
  await writeFile(join(share, "a.txt"), "written while asleep\n");
  await rm(join(share, "gone.txt"));
  await writeFile(join(share, "new.txt"), "new while asleep\n");
  // Longer than --timeout: the connection is dead to the client when it wakes.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  watcher.cli.process.kill("SIGCONT");
  await waitFor(
    async () =>
      (await contentIs(join(dest, "a.txt"), "written while asleep\n")) &&
      (await contentIs(join(dest, "new.txt"), "new while asleep\n")) &&
      isAbsent(join(dest, "gone.txt")),
    { what: "DEST caught up", timeoutMs: ARRIVES_MS },
  );
});

test("--path FILE --watch keeps that one file current", { timeout: NO_HANG_TIMEOUT_MS }, async (t) => {
  const { base, share, env } = await makeShare(t, "watch-file", {
    "docs/plan.txt": "v1\n",
    "other.txt": "o\n",
  });
  const host = await hostWithCli(t, { base, share });
  const dest = join(base, "dest");
  await startWatch(t, host.link, dest, env, ["--path", "docs/plan.txt"]);
  assert.deepEqual(await readdir(dest), ["plan.txt"]);
  await writeFile(join(share, "docs", "plan.txt"), "v2\n");
  await writeFile(join(share, "other.txt"), "not watched\n");
  await waitFor(() => contentIs(join(dest, "plan.txt"), "v2\n"), {
    what: "plan.txt v2",
    timeoutMs: ARRIVES_MS,
  });
  assert.deepEqual(await readdir(dest), ["plan.txt"]);
});

test("a hostile host's removals never reach outside DEST: through a symlink nothing, with '..' the watch ends", {
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const base = await tempDir(t, "watch-hostile");
  const victim = join(base, "victim");
  const dest = join(base, "dest");
  await mkdir(victim);
  await mkdir(dest);
  await writeFile(join(victim, "precious.txt"), "keep me\n");
  await symlink(victim, join(dest, "escape"));
  const host = await startHostileHost(join(base, "host-home"), [hostile.entries([dirEntry("")])], undefined, {
    features: Feature.WATCH,
    watch: [
      hostile.changes(1, [], []),
      hostile.changes(2, [], ["escape/precious.txt"]),
      hostile.changes(3, [], ["../victim/precious.txt"]),
    ],
  });
  onCleanup(t, () => host.close());
  const cli = spawnCli(["pull", host.link, dest, "--watch", "--json"], {
    TELEPORT_HOME: join(base, "client-home"),
  });
  onCleanup(t, () => {
    cli.process.kill("SIGKILL");
  });
  const result = await cli.result;
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /TELEPORT_ERR_PROTOCOL/);
  assert.match(
    result.stdout,
    /"removed":\["escape\/precious.txt"\]/,
    "the batch through the symlink was taken",
  );
  assert.equal(await readFile(join(victim, "precious.txt"), "utf8"), "keep me\n");
});
