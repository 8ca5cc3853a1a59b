/**
 * Never sending a byte twice, end to end through the CLI: an identical re-pull, an edited file,
 * a file held under another name (`teleport index`), a pull killed with SIGKILL and run again —
 * and the index lying or going stale, which must cost network bytes, never wrong output.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, open, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import Database from "better-sqlite3";
import { DEFAULT_CDC_SIZES } from "../../src/chunking/chunker.js";
import type { PullSummary } from "../../src/client/pull.js";
import { type CliEnv, runCli, spawnCli } from "../helpers/cli.js";
import { onCleanup, waitFor } from "../helpers/context.js";
import { hostInProcess, hostWithCli, makeShare } from "../helpers/share.js";
import { findPartFiles, isAbsent, MiB, pseudoRandomBytes } from "../helpers/tree.js";

const SIZE = 16 * MiB;
const MAX_CHUNK = DEFAULT_CDC_SIZES.max;

interface Setup {
  share: string;
  dest: string;
  env: CliEnv;
  link: string;
  base: string;
}

async function setup(t: TestContext, label: string, content: Buffer): Promise<Setup> {
  const { base, share } = await makeShare(t, label);
  await writeFile(join(share, "data.bin"), content);
  const host = await hostWithCli(t, { base, share });
  return {
    share,
    dest: join(base, "dest"),
    env: { TELEPORT_HOME: join(base, "client-home") },
    link: host.link,
    base,
  };
}

async function pullJson(link: string, dest: string, env: CliEnv): Promise<PullSummary> {
  const result = await runCli(["pull", link, dest, "--json"], env);
  assert.equal(result.code, 0, `pull failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as PullSummary;
}

async function assertSameFile(a: string, b: string): Promise<void> {
  assert.ok((await readFile(a)).equals(await readFile(b)), `${a} and ${b} differ`);
}

test("an identical re-pull fetches nothing and leaves the file untouched", async (t) => {
  const { share, dest, env, link } = await setup(t, "identical", pseudoRandomBytes(SIZE, "identical"));
  const first = await pullJson(link, dest, env);
  assert.equal(first.bytesFromNetwork, SIZE);
  const before = await stat(join(dest, "data.bin"), { bigint: true });

  const again = await pullJson(link, dest, env);

  assert.equal(again.bytesFromNetwork, 0);
  assert.equal(again.bytesReused, SIZE, "every byte accounted for");
  assert.equal(again.reused.existing, SIZE);
  assert.deepEqual(again.streams, [], "no data stream was opened");
  assert.equal(again.bytesReadLocally, 0, "nothing was read to know it");
  const after = await stat(join(dest, "data.bin"), { bigint: true });
  assert.equal(after.ino, before.ino, "not rewritten");
  assert.equal(after.mtimeNs, before.mtimeNs);
  await assertSameFile(join(share, "data.bin"), join(dest, "data.bin"));
});

test("one byte inserted at the start: only the first chunks cross the network", async (t) => {
  const original = pseudoRandomBytes(SIZE, "insert");
  const { share, dest, env, link } = await setup(t, "insert", original);
  await pullJson(link, dest, env);
  await writeFile(join(share, "data.bin"), Buffer.concat([Buffer.from("!"), original]));

  const summary = await pullJson(link, dest, env);

  assert.ok(summary.bytesFromNetwork <= 2 * MAX_CHUNK, `${summary.bytesFromNetwork} bytes fetched`);
  assert.equal(summary.bytesFromNetwork + summary.bytesReused, SIZE + 1);
  assert.equal(summary.reused.existing, summary.bytesReused);
  await assertSameFile(join(share, "data.bin"), join(dest, "data.bin"));
  assert.deepEqual(await findPartFiles(dest), []);
});

test("10% rewritten in place: little more than the rewritten bytes cross the network", async (t) => {
  const original = pseudoRandomBytes(SIZE, "rewrite");
  const { share, dest, env, link } = await setup(t, "rewrite", original);
  await pullJson(link, dest, env);
  const edited = Buffer.from(original);
  for (const at of [2 * MiB, 9 * MiB]) pseudoRandomBytes(SIZE / 20, `patch ${at}`).copy(edited, at);
  await writeFile(join(share, "data.bin"), edited);

  const summary = await pullJson(link, dest, env);

  const limit = SIZE / 10 + 4 * MAX_CHUNK;
  assert.ok(summary.bytesFromNetwork <= limit, `${summary.bytesFromNetwork} > ${limit} bytes fetched`);
  assert.ok(summary.bytesFromNetwork >= SIZE / 10, "the rewritten bytes were fetched");
  await assertSameFile(join(share, "data.bin"), join(dest, "data.bin"));
});

test("a file held under another name and indexed with `teleport index` is copied, not fetched", async (t) => {
  const content = pseudoRandomBytes(SIZE, "seed");
  const { share, dest, env, link, base } = await setup(t, "seed", content);
  const seeds = join(base, "seeds");
  await mkdir(seeds);
  await writeFile(join(seeds, "renamed-copy.bin"), content);

  const indexed = await runCli(["index", seeds, "--json"], env);
  assert.equal(indexed.code, 0, indexed.stderr);
  assert.equal(JSON.parse(indexed.stdout).hashedBytes, SIZE);
  const summary = await pullJson(link, dest, env);

  assert.equal(summary.bytesFromNetwork, 0);
  assert.equal(summary.reused.index, SIZE);
  await assertSameFile(join(share, "data.bin"), join(dest, "data.bin"));

  await t.test("a seed changed after indexing is not trusted: its chunks are fetched", async () => {
    const seed = join(seeds, "renamed-copy.bin");
    const handle = await open(seed, "r+");
    await handle.write(Buffer.alloc(MiB, 7), 0, MiB, 4 * MiB);
    await handle.close();
    // The first pull's output is indexed too: gone, so the changed seed is the only local copy.
    await rm(join(dest, "data.bin"));
    const dest2 = join(base, "dest2");
    const again = await pullJson(link, dest2, { TELEPORT_HOME: env.TELEPORT_HOME });
    await assertSameFile(join(share, "data.bin"), join(dest2, "data.bin"));
    assert.equal(again.bytesFromNetwork + again.bytesReused, SIZE);
    assert.ok(
      again.bytesFromNetwork >= MiB,
      `${again.bytesFromNetwork} bytes fetched: the changed MiB was not`,
    );
  });
});

test("index rows that lie cannot corrupt output: every reused chunk is verified", async (t) => {
  const content = pseudoRandomBytes(SIZE, "lies");
  const { share, dest, env, link, base } = await setup(t, "lies", content);
  const seeds = join(base, "seeds");
  await mkdir(seeds);
  const seed = join(seeds, "copy.bin");
  await writeFile(seed, content);
  assert.equal((await runCli(["index", seeds], env)).code, 0);

  // The seed changes in a way its identity does not show: the rows now describe other bytes.
  const before = await stat(seed);
  const tampered = Buffer.from(content);
  tampered.fill(0x55, 3 * MiB, 5 * MiB);
  await writeFile(seed, tampered);
  await utimes(seed, before.atime, before.mtime);
  const db = new Database(join(env.TELEPORT_HOME, "index.db"));
  const now = await stat(seed, { bigint: true });
  const identity = `${now.dev}:${now.ino}:${now.size}:${now.mtimeNs}:${now.ctimeNs}`;
  db.prepare("UPDATE files SET identity = ? WHERE path = ?").run(identity, seed);
  // And a row points at the wrong offset.
  db.prepare(
    "UPDATE chunks SET offset = offset + 1 WHERE offset = (SELECT min(offset) FROM chunks WHERE offset > 0)",
  ).run();
  db.close();

  const summary = await pullJson(link, dest, env);

  await assertSameFile(join(share, "data.bin"), join(dest, "data.bin"));
  assert.ok(summary.bytesFromNetwork >= 2 * MiB, "the tampered range was fetched");
  assert.ok(summary.reused.index > 0 && summary.reused.index < SIZE - 2 * MiB);
});

test("a pull killed with SIGKILL resumes: the rerun fetches only what is missing", async (t) => {
  const { base, share } = await makeShare(t, "resume");
  const content = pseudoRandomBytes(4 * SIZE, "resume");
  await writeFile(join(share, "data.bin"), content);
  const dest = join(base, "dest");
  const env = { TELEPORT_HOME: join(base, "client-home") };
  let served = 0;
  let killAt = Number.POSITIVE_INFINITY;
  let kill: (() => void) | undefined;
  const host = await hostInProcess(t, {
    base,
    share,
    faults: {
      beforeChunk: async (request) => {
        served += request.size;
        if (served >= killAt) kill?.();
        await new Promise((resolve) => setTimeout(resolve, 2));
      },
    },
  });

  killAt = content.length / 2;
  const doomed = spawnCli(["pull", host.url, dest, "--json"], env);
  kill = () => doomed.process.kill("SIGKILL");
  onCleanup(t, kill);
  const killed = await doomed.result;
  assert.equal(killed.signal, "SIGKILL");
  const firstRun = served;
  assert.equal((await findPartFiles(dest)).length, 1, "the download in progress is kept");
  // The host stops serving the dead client (a run already under way finishes) before the rerun.
  let last = -1;
  await waitFor(
    () => {
      const settled = served === last && host.connectionCount === 0;
      last = served;
      return settled;
    },
    { what: "the host to stop serving the killed pull", intervalMs: 200 },
  );

  killAt = Number.POSITIVE_INFINITY;
  served = 0;
  const summary = await pullJson(host.url, dest, env);

  await assertSameFile(join(share, "data.bin"), join(dest, "data.bin"));
  assert.deepEqual(await findPartFiles(dest), []);
  assert.ok(summary.reused.resumed > 0, "the first run's chunks were kept");
  assert.equal(summary.bytesReadLocally, 0, "and not read again");
  assert.equal(summary.bytesFromNetwork, served);
  assert.equal(summary.bytesFromNetwork + summary.reused.resumed, content.length);
  // Fetched twice: only what was in flight when the first run died (at most the 16 MiB window)
  // and what it wrote in its last moments without journaling yet (tens of milliseconds).
  const inFlight = 16 * MiB;
  assert.ok(firstRun + served <= content.length + 2 * inFlight, `${firstRun} + ${served} bytes served`);
});

test("temporary files of running pulls are left alone; those of killed pulls are removed", async (t) => {
  const content = pseudoRandomBytes(10_000, "small");
  const { share, dest, env, link } = await setup(t, "busy-temp", content);
  await mkdir(dest);
  await writeFile(join(dest, "data.bin"), "an old copy, so that the folder is listed");
  // What another pull of the same file, still running (this process), would be writing now.
  const busy = join(dest, `.data.bin.${process.pid}-0123456789ab.teleport-part`);
  await writeFile(busy, "another pull's bytes");
  const gone = spawnSync(process.execPath, ["-e", ""]).pid as number;
  const leftover = join(dest, `.data.bin.${gone}-0123456789ab.teleport-part`);
  await writeFile(leftover, "a killed pull's bytes");

  const summary = await pullJson(link, dest, env);

  assert.equal(summary.files, 1);
  await assertSameFile(join(share, "data.bin"), join(dest, "data.bin"));
  assert.equal(await readFile(busy, "utf8"), "another pull's bytes", "not replaced, not renamed into place");
  assert.ok(await isAbsent(leftover), "a dead pull's temporary file is removed");
});

test("tiny files: unchanged ones are kept, edited ones fetched, with modes and mtimes set", async (t) => {
  const { share, dest, env, link } = await setup(t, "tiny", pseudoRandomBytes(MiB, "tiny-big"));
  const tiny = (i: number, seed: string) => pseudoRandomBytes(1000 + i * 500, `${seed}-${i}`);
  for (let i = 0; i < 20; i++) await writeFile(join(share, `t${i}.txt`), tiny(i, "v1"));
  const first = await pullJson(link, dest, env);
  assert.equal(first.files, 21);

  // Same size, new bytes; a new size; a new mode only; the rest untouched.
  await writeFile(join(share, "t3.txt"), tiny(3, "v2"));
  await writeFile(join(share, "t4.txt"), pseudoRandomBytes(777, "shorter"));
  await utimes(join(share, "t5.txt"), new Date(), new Date(2001, 0, 1));
  const second = await pullJson(link, dest, env);

  for (let i = 0; i < 20; i++) await assertSameFile(join(share, `t${i}.txt`), join(dest, `t${i}.txt`));
  const changedBytes = tiny(3, "v2").length + 777;
  assert.equal(second.bytesFromNetwork, changedBytes, "only the two edited files crossed");
  assert.equal(second.bytesReused, first.bytes - tiny(3, "v1").length - tiny(4, "v1").length);
  assert.equal((await stat(join(dest, "t5.txt"))).mtime.getFullYear(), 2001);
  assert.deepEqual(await findPartFiles(dest), []);
});
