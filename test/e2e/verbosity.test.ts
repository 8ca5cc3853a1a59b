/**
 * How much `pull` says, through the real CLI: -v names each file as it completes (moved or
 * reused), -q says nothing but errors, and where stderr is not a terminal a line of stats comes
 * every TELEPORT_PROGRESS_INTERVAL seconds instead of a bar.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { hostWithCli, makeShare } from "../helpers/share.js";
import { MiB, pseudoRandomBytes } from "../helpers/tree.js";

test("-v prints a line per file as it completes: its path, size, and whether it was moved or reused", async (t) => {
  const edited = pseudoRandomBytes(4 * MiB, "edited");
  const { base, share, env } = await makeShare(t, "verbose", {
    "a.txt": "hello\n",
    "dir/b.bin": pseudoRandomBytes(2 * MiB, "b"),
    "c.bin": edited,
  });
  const host = await hostWithCli(t, { base, share });
  const dest = join(base, "dest");

  const first = await runCli(["pull", host.link, dest, "-v"], env);
  assert.equal(first.code, 0, first.stderr);
  const lines = first.stdout.trimEnd().split("\n");
  assert.deepEqual(lines.slice(0, -1).sort(), [
    "a.txt  6 B  moved",
    "c.bin  4.0 MiB  moved",
    "dir/b.bin  2.0 MiB  moved",
  ]);
  assert.match(lines.at(-1) ?? "", /^pulled 3 files/, "the summary comes last");

  edited.fill(7, 0, 64 * 1024);
  await writeFile(join(share, "c.bin"), edited);
  const again = await runCli(["pull", host.link, dest, "--verbose"], env);
  assert.equal(again.code, 0, again.stderr);
  const files = again.stdout.trimEnd().split("\n").slice(0, -1).sort();
  assert.equal(files.length, 3, again.stdout);
  assert.equal(files[0], "a.txt  6 B  reused");
  assert.match(files[1] ?? "", /^c\.bin {2}4\.0 MiB {2}[\d.]+ KiB moved, [\d.]+ MiB reused$/);
  assert.equal(files[2], "dir/b.bin  2.0 MiB  reused");
});

test("-q prints nothing on success, and the error on failure", async (t) => {
  const { base, share, env } = await makeShare(t, "quiet", { "a.bin": pseudoRandomBytes(MiB, "quiet") });
  const host = await hostWithCli(t, { base, share });
  const dest = join(base, "dest");
  // A stats line every 10 ms would show, were -q not to silence it.
  const quietEnv = { ...env, TELEPORT_PROGRESS_INTERVAL: "0.01" };

  const pulled = await runCli(["pull", host.link, dest, "-q"], quietEnv);
  assert.equal(pulled.code, 0, pulled.stderr);
  assert.equal(pulled.stdout, "");
  assert.equal(pulled.stderr, "");

  const failed = await runCli(
    ["pull", host.link, join(base, "dest2"), "--quiet", "--path", "nope"],
    quietEnv,
  );
  assert.notEqual(failed.code, 0);
  assert.equal(failed.stdout, "");
  assert.match(failed.stderr, /^teleport: TELEPORT_ERR_NOT_FOUND/);
});

test("where stderr is not a terminal, a line of stats comes every TELEPORT_PROGRESS_INTERVAL seconds", async (t) => {
  const size = 64 * MiB;
  const { base, share, env } = await makeShare(t, "stats-lines", {
    "big.bin": pseudoRandomBytes(size, "stats"),
  });
  const host = await hostWithCli(t, { base, share });
  const statsEnv = { ...env, TELEPORT_PROGRESS_INTERVAL: "0.05" };

  const pulled = await runCli(["pull", host.link, join(base, "dest")], statsEnv);
  assert.equal(pulled.code, 0, pulled.stderr);
  const stats = pulled.stderr.split("\n").filter((line) => line.startsWith("teleport: "));
  assert.ok(stats.length >= 2, `stats lines: ${pulled.stderr}`);
  assert.ok(
    stats.some((line) =>
      /^teleport: \d+% \| [\d.]+ (B|KiB|MiB) \/ 64\.0 MiB\+? \| (--|[\d.]+) (B|KiB|MiB)\/s \| ETA /.test(
        line,
      ),
    ),
    pulled.stderr,
  );
  for (const line of stats) {
    assert.doesNotMatch(line, /NULL|NaN|Infinity|undefined|\/ \d{4,}\b/, line);
    assert.ok(!line.includes("\r") && !line.includes("\u001b["), "no terminal codes in a log");
  }
  assert.doesNotMatch(pulled.stdout, /^teleport: /m, "stdout has the summary only");

  const unshown = await runCli(["pull", host.link, join(base, "dest2"), "--no-progress"], statsEnv);
  assert.equal(unshown.code, 0, unshown.stderr);
  assert.equal(unshown.stderr, "");
});
