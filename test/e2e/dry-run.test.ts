/**
 * `pull --dry-run`: nothing written in DEST (nor DEST made), every file placed (copy, reuse,
 * unchanged), and `bytesFromNetwork` after dedup what the pull that follows then fetches.
 */
import assert from "node:assert/strict";
import { cpSync, existsSync, opendirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runCli } from "../helpers/cli.js";
import { hostWithCli, makeShare } from "../helpers/share.js";
import { pseudoRandomBytes, snapshotTree } from "../helpers/tree.js";

interface DryRun {
  copy: string[];
  reuse: string[];
  unchanged: number;
  bytesFromNetwork: number;
}

/** A folder's names in the order the host's walk meets them (readdirSync sorts them). */
function directoryOrder(path: string): string[] {
  const dir = opendirSync(path);
  const names: string[] = [];
  try {
    for (let dirent = dir.readSync(); dirent !== null; dirent = dir.readSync()) names.push(dirent.name);
  } finally {
    dir.closeSync();
  }
  return names;
}

describe("pull --dry-run", () => {
  it("writes nothing, places every file, and predicts the bytes the pull fetches", async (t) => {
    const big = pseudoRandomBytes(4 * 1024 * 1024, "dry-run");
    const folder = await makeShare(t, "dry-run", {
      "a.bin": big,
      "b.bin": big,
      "c.txt": "c\n",
      "keep.txt": "keep\n",
    });
    const dest = join(folder.base, "dest");
    cpSync(join(folder.share, "keep.txt"), join(dest, "keep.txt"), { preserveTimestamps: true });
    const changed = Buffer.from(big);
    changed.write("a few bytes changed in the middle", 2 * 1024 * 1024);
    writeFileSync(join(dest, "a.bin"), changed);
    const host = await hostWithCli(t, folder);

    const missing = join(folder.base, "missing");
    const intoNothing = await runCli(["pull", host.link, missing, "--dry-run", "--json"], folder.env);
    assert.equal(intoNothing.code, 0, intoNothing.stderr);
    assert.equal((JSON.parse(intoNothing.stdout) as DryRun).unchanged, 0);
    assert.ok(!existsSync(missing), "DEST is not made");

    const before = await snapshotTree(dest);
    const dry = await runCli(["pull", host.link, dest, "--dry-run", "--json"], folder.env);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(await snapshotTree(dest), before, "nothing written");
    const report = JSON.parse(dry.stdout) as DryRun;
    assert.deepEqual([...report.copy, ...report.reuse].sort(), ["a.bin", "b.bin", "c.txt"]);
    assert.equal(report.unchanged, 1);
    assert.ok(report.bytesFromNetwork < 2 * big.length, "a chunk in both copies counted once");

    const pulled = await runCli(["pull", host.link, dest, "--json"], folder.env);
    assert.equal(pulled.code, 0, pulled.stderr);
    // Whole chunks: the pull may move the changed one as a delta against its old copy, a little
    // more or less.
    const fetched = (JSON.parse(pulled.stdout) as { bytesFromNetwork: number }).bytesFromNetwork;
    assert.ok(
      Math.abs(fetched - report.bytesFromNetwork) <= report.bytesFromNetwork * 0.05,
      `${fetched} fetched`,
    );
    // The host walks a folder in its directory order: b.bin walked before a.bin is fetched whole,
    // as its chunks are then only in a.bin's old copy, which a pull reads for a.bin alone.
    const names = directoryOrder(folder.share);
    const changedChunkOnly = names.indexOf("a.bin") < names.indexOf("b.bin");
    const fetchedWhole = changedChunkOnly ? 0 : big.length;
    assert.ok(report.bytesFromNetwork < fetchedWhole + big.length / 8, `the changed chunk only (${names})`);

    const again = JSON.parse(
      (await runCli(["pull", host.link, dest, "--dry-run", "--json"], folder.env)).stdout,
    ) as DryRun;
    assert.deepEqual([again.copy, again.reuse, again.unchanged, again.bytesFromNetwork], [[], [], 4, 0]);
  });
});
