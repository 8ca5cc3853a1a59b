/**
 * Deltas through the CLI: a file edited on the host is pulled again into its old copy, and only
 * what changed crosses the network (Feature.DELTA); the result is byte-identical and verified.
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { PullSummary } from "../../src/client/pull.js";
import { type CliEnv, runCli } from "../helpers/cli.js";
import { hostWithCli, makeShare } from "../helpers/share.js";

/** Lines of source-like text, different on every line. */
function sourceText(lines: number, label: string): string {
  const out: string[] = [];
  for (let i = 0; i < lines; i++)
    out.push(`static int ${label}_${i}(struct device *dev) { return helper(dev, ${(i * 7919) % 1000}); }`);
  return `${out.join("\n")}\n`;
}

async function pullJson(link: string, dest: string, env: CliEnv): Promise<PullSummary> {
  const result = await runCli(["pull", link, dest, "--json"], env);
  assert.equal(result.code, 0, `pull failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as PullSummary;
}

test("a one-line edit in a small file and a medium file moves a few hundred bytes, not the files", async (t) => {
  const small = sourceText(100, "small"); // ~8 KB: one chunk
  const medium = sourceText(4000, "medium"); // ~330 KB: several chunks
  const grown = sourceText(150, "grown");
  const twice = sourceText(5000, "twice"); // ~225 KB, a few chunks, signed whole once for both its edits
  const { base, share, env } = await makeShare(t, "delta", {
    "small.c": small,
    "dir/medium.c": medium,
    "grown.c": grown,
    "twice.c": twice,
  });
  const host = await hostWithCli(t, { base, share });
  const dest = join(base, "dest");
  await pullJson(host.link, dest, env);

  await writeFile(join(share, "small.c"), small.replace("small_50(", "small_50_renamed("));
  await writeFile(join(share, "dir/medium.c"), medium.replace("medium_2000(", "medium_2000_renamed("));
  await writeFile(join(share, "grown.c"), grown.replace("grown_70(", "grown_70(void);\nint added(")); // size changes
  await writeFile(
    join(share, "twice.c"),
    twice.replace("twice_10(", "twice_10_a(").replace("twice_4990(", "twice_4990_b("),
  );
  const summary = await pullJson(host.link, dest, env);

  for (const path of ["small.c", "dir/medium.c", "grown.c", "twice.c"])
    assert.ok(
      (await readFile(join(dest, path))).equals(await readFile(join(share, path))),
      `${path} differs`,
    );
  const delta = summary.delta;
  assert.ok(delta !== null, "the host answers deltas");
  assert.equal(delta.fetchedWhole, 0);
  assert.ok(delta.chunks >= 5, `${delta.chunks} chunks came as deltas`);
  const changedBytes = small.length + medium.length + grown.length + twice.length;
  assert.ok(summary.bytesFromNetwork < 5000, `${summary.bytesFromNetwork} bytes from the network`);
  assert.ok(
    delta.bytesSent + delta.bytesReceived < changedBytes / 10,
    `deltas took ${delta.bytesSent}+${delta.bytesReceived} bytes`,
  );
  assert.ok(delta.bytesSaved > 0);

  // The same size: the old copy is probed (hashed) first, then found changed.
  await writeFile(join(share, "small.c"), small.replace("small_20(", "small_21("));
  const text = await runCli(["pull", host.link, dest], env);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /saved by delta/, "a same-size edit comes as a delta too");
  assert.ok((await readFile(join(dest, "small.c"))).equals(await readFile(join(share, "small.c"))));
});
