/**
 * Compression through the real CLI: `pull --compress on` reports the bytes on the wire, and the
 * host says what it compressed when it stops. (The rest of compression is tested in process, in
 * test/integration/compression.test.ts.)
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { PullSummary } from "../../src/client/pull.js";
import { runCli } from "../helpers/cli.js";
import { hostWithCli, makeShare } from "../helpers/share.js";
import { compareTrees, compressibleText, MiB } from "../helpers/tree.js";

test("the CLI: pull --compress on reports the wire bytes, the host says what it compressed when stopped", async (t) => {
  const { base, share } = await makeShare(t, "compression-cli");
  await writeFile(join(share, "source.ts"), compressibleText(2 * MiB, "cli"));
  const host = await hostWithCli(t, { base, share });
  const env = { TELEPORT_HOME: join(base, "client-home") };
  const result = await runCli(["pull", host.link, join(base, "dest"), "--json", "--compress", "on"], env);
  assert.equal(result.code, 0, result.stderr);
  await compareTrees(share, join(base, "dest"));
  const summary = JSON.parse(result.stdout) as PullSummary;
  assert.ok(summary.bytesOnWire < summary.bytesFromNetwork / 2, `${summary.bytesOnWire} on the wire`);
  await host.stop();
  assert.match(host.stderr(), /compressed 2\.1 MB into 0\.\d MB \(\d+\.\d\dx\) for clients; by level: \d+ /);
});
