/**
 * `pull --bwlimit` through the real CLI on loopback: the limit holds a pull to its rate over
 * the whole transfer, shared by every data stream (several are pinned so the shared bucket,
 * not one stream's, is what is tested).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import type { PullSummary } from "../../src/client/pull.js";
import { runCli } from "../helpers/cli.js";
import { hostWithCli, makeShare } from "../helpers/share.js";
import { compareTrees, MiB, pseudoRandomBytes } from "../helpers/tree.js";

test("pull --bwlimit 4M holds 8 MiB over four streams to about two seconds", async (t) => {
  const { base, share } = await makeShare(t, "bwlimit", {
    "payload.bin": pseudoRandomBytes(8 * MiB, "bwlimit"),
  });
  const host = await hostWithCli(t, { base, share });
  const env = { TELEPORT_HOME: join(base, "client-home") };
  const dest = join(base, "dest");
  const result = await runCli(
    ["pull", host.link, dest, "--json", "--bwlimit", "4M", "--streams", "4", "--reuse", "none"],
    env,
  );
  assert.equal(result.code, 0, result.stderr);
  await compareTrees(share, dest);
  const summary = JSON.parse(result.stdout) as PullSummary;
  assert.equal(summary.bytesFromNetwork, 8 * MiB);
  t.diagnostic(`8 MiB at 4 MiB/s: ${summary.seconds.toFixed(2)} s`);
  assert.ok(
    summary.seconds >= 1.8 && summary.seconds <= 2.6,
    `8 MiB at 4 MiB/s took ${summary.seconds.toFixed(2)} s (expected 1.8-2.6)`,
  );
});

test("pull --bwlimit refuses a rate it cannot read, naming the forms it takes", async (t) => {
  const { base } = await makeShare(t, "bwlimit-usage");
  const env = { TELEPORT_HOME: join(base, "client-home") };
  for (const rate of ["10", "10mb", "0k", "fast"]) {
    const result = await runCli(["pull", "-", join(base, "dest"), "--bwlimit", rate], env, { stdin: "" });
    assert.equal(result.code, 2, `${rate}: ${result.stderr}`);
    assert.match(result.stderr, /--bwlimit <rate>.*expected bytes per second such as 500k, 10M/);
  }
});
