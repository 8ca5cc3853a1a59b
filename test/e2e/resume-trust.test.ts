/**
 * A killed pull's part file is resumed on the strength of its journal, which vouches for bytes
 * by device and inode alone: a part file another local user owns, or one group or others may
 * write, can hold their bytes under our journal's rows, and must not be resumed. Real `pull`
 * processes, one SIGKILLed mid-file, and the part file tampered with as that user would. A part
 * file journaled in an earlier boot is read back and each chunk hashed before it counts: a crash
 * of the machine can keep a row and lose the bytes it vouches for.
 */
import assert from "node:assert/strict";
import { chmod, chown, open, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type TestContext, test } from "node:test";
import Database from "better-sqlite3";
import type { PullSummary } from "../../src/client/pull.js";
import { runCli, spawnCli } from "../helpers/cli.js";
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

test("a part file journaled before the machine restarted is read back: bytes a crash lost are fetched again", async (t) => {
  const { content, dest, summary } = await interruptedPull(t, "resume-other-boot", async (partPath) => {
    // What a power cut leaves: the journal's rows on disk, some of the bytes they vouch for not.
    const index = new Database(join(dirname(dirname(partPath)), "client-home", "index.db"));
    try {
      index.prepare("UPDATE files SET boot_id = 'a boot before this one' WHERE boot_id IS NOT NULL").run();
    } finally {
      index.close();
    }
    await overwriteStart(partPath);
  });
  assert.ok(summary.reused.resumed > 0, "the chunks still on disk are resumed");
  assert.ok(summary.reused.resumed <= SIZE / 2 - MiB, `${summary.reused.resumed} bytes resumed`);
  assert.deepEqual(await readFile(join(dest, "data.bin")), content);
});
