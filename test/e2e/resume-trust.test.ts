/**
 * A killed pull's part file is resumed on the strength of its journal, which vouches for bytes
 * by device and inode alone: a part file another local user owns, or one group or others may
 * write, can hold their bytes under our journal's rows, and must not be resumed. Real `pull`
 * processes, one SIGKILLed mid-file, and the part file tampered with as that user would. And the
 * rows must not reach the disk before the bytes they vouch for (seen with strace).
 */
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { chmod, chown, open, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { promisify } from "node:util";
import type { PullSummary } from "../../src/client/pull.js";
import { CLI_PATH, runCli, spawnCli } from "../helpers/cli.js";
import { onCleanup, waitFor } from "../helpers/context.js";
import { hostInProcess, makeShare } from "../helpers/share.js";
import { findPartFiles, MiB, pseudoRandomBytes } from "../helpers/tree.js";

const SIZE = 48 * MiB;

/** Pulls until half the file is served, SIGKILLs the pull, then lets `tamper` at the part file it left. */
async function interruptedPull(t: TestContext, label: string, tamper: (partPath: string) => Promise<void>) {
  const { base, share } = await makeShare(t, label);
  const content = pseudoRandomBytes(SIZE, label);
  await writeFile(join(share, "data.bin"), content);
  const dest = join(base, "dest");
  const env = { TELEPORT_HOME: join(base, "client-home") };
  let served = 0;
  let kill: (() => void) | undefined;
  const host = await hostInProcess(t, {
    base,
    share,
    faults: {
      beforeChunk: async (request) => {
        served += request.size;
        if (served >= SIZE / 2) kill?.();
        await new Promise((resolve) => setImmediate(resolve));
      },
    },
  });
  const doomed = spawnCli(["pull", host.url, dest, "--json"], env);
  kill = () => doomed.process.kill("SIGKILL");
  onCleanup(t, kill);
  assert.equal((await doomed.result).signal, "SIGKILL");
  kill = undefined;
  await waitFor(() => host.connectionCount === 0, { what: "the host to drop the killed pull" });
  const [part] = await findPartFiles(dest);
  assert.ok(part !== undefined, "the killed pull left its part file");
  await tamper(join(dest, part));
  const rerun = await runCli(["pull", host.url, dest, "--json"], env);
  assert.equal(rerun.code, 0, rerun.stderr);
  return { content, dest, summary: JSON.parse(rerun.stdout) as PullSummary };
}

/** What the other user writes: zeros over the part file's first MiB, which the journal vouches for. */
async function overwriteStart(partPath: string): Promise<void> {
  const file = await open(partPath, "r+");
  try {
    await file.write(Buffer.alloc(MiB), 0, MiB, 0);
  } finally {
    await file.close();
  }
}

test("a part file others may write is not resumed: its bytes are fetched again", async (t) => {
  const { content, dest, summary } = await interruptedPull(t, "resume-writable", async (partPath) => {
    await chmod(partPath, 0o666);
    await overwriteStart(partPath);
  });
  assert.equal(summary.reused.resumed, 0, "nothing resumed from a part file others could write");
  assert.deepEqual(await readFile(join(dest, "data.bin")), content);
});

test("a part file another user owns is not resumed", {
  skip: process.geteuid?.() !== 0 && "needs root to chown",
}, async (t) => {
  const { content, dest, summary } = await interruptedPull(t, "resume-owner", async (partPath) => {
    await chown(partPath, 65534, 65534);
    await overwriteStart(partPath);
  });
  assert.equal(summary.reused.resumed, 0, "nothing resumed from another user's file");
  assert.deepEqual(await readFile(join(dest, "data.bin")), content);
});

const hasStrace = spawnSync("strace", ["-V"]).status === 0;

test("journal rows are not written before their bytes are durable: the part file is synced first, per batch", {
  skip: !hasStrace && "needs strace",
}, async (t) => {
  const { base, share } = await makeShare(t, "journal-durable");
  const content = pseudoRandomBytes(SIZE, "journal-durable");
  await writeFile(join(share, "data.bin"), content);
  const host = await hostInProcess(t, { base, share });
  const log = join(base, "strace.log");
  const dest = join(base, "dest");
  // Asynchronously: the host answers from this process.
  await promisify(execFile)(
    "strace",
    [
      "-f",
      "-y",
      "-e",
      "trace=fdatasync,pwrite64",
      "-o",
      log,
      process.execPath,
      CLI_PATH,
      "pull",
      host.url,
      dest,
      "--json",
    ],
    { env: { ...process.env, NODE_TEST_CONTEXT: "", TELEPORT_HOME: join(base, "client-home") } },
  );
  assert.deepEqual(await readFile(join(dest, "data.bin")), content);
  const lines = (await readFile(log, "utf8")).split("\n");
  const partSyncs = lines.flatMap((line, at) =>
    /fdatasync\(\d+<[^>]*\.teleport-part>/.test(line) ? [at] : [],
  );
  const walWrites = lines.flatMap((line, at) => (/pwrite64\(\d+<[^>]*index\.db-wal>/.test(line) ? [at] : []));
  assert.ok(partSyncs.length > 0, "the part file was synced before its rows were journaled");
  const firstSync = partSyncs[0] ?? Number.POSITIVE_INFINITY;
  assert.ok(
    walWrites.some((at) => at > firstSync),
    "journal rows were written after the sync",
  );
  // Batched: a sync per journal batch, far fewer than one per chunk (48 MiB: dozens of chunks).
  assert.ok(partSyncs.length <= 12, `${partSyncs.length} syncs of the part file`);
});
