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

/** An unlimited pull of 8 MiB on an idle loopback takes about 0.3 s, connecting included. */
const IDLE_UNLIMITED_SECONDS = 0.6;

test("pull --bwlimit 4M holds 8 MiB over four streams to about two seconds", async (t) => {
  const { base, share } = await makeShare(t, "bwlimit", {
    "payload.bin": pseudoRandomBytes(8 * MiB, "bwlimit"),
  });
  const host = await hostWithCli(t, { base, share });
  const env = { TELEPORT_HOME: join(base, "client-home") };
  const pull = async (dest: string, ...flags: string[]) => {
    const result = await runCli(
      ["pull", host.link, join(base, dest), "--json", "--reuse", "none", ...flags],
      env,
    );
    assert.equal(result.code, 0, result.stderr);
    await compareTrees(share, join(base, dest));
    return JSON.parse(result.stdout) as PullSummary;
  };
  // The same pull without a limit, just before: what a loaded machine adds to any pull (start,
  // connect, manifest) widens the upper bound by as much, never the lower one.
  const unlimited = await pull("unlimited", "--streams", "4");
  const limited = await pull("limited", "--streams", "4", "--bwlimit", "4M");
  assert.equal(limited.bytesFromNetwork, 8 * MiB);
  const load = Math.max(0, unlimited.seconds - IDLE_UNLIMITED_SECONDS);
  t.diagnostic(
    `8 MiB at 4 MiB/s: ${limited.seconds.toFixed(2)} s; unlimited ${unlimited.seconds.toFixed(2)} s`,
  );
  assert.ok(
    limited.seconds >= 1.8 && limited.seconds <= 2.6 + load,
    `8 MiB at 4 MiB/s took ${limited.seconds.toFixed(2)} s (expected 1.8-${(2.6 + load).toFixed(2)})`,
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
