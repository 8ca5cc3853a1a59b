/**
 * The upload folder (`push --path`) against a local user of the host who swaps a folder on that
 * path for a symlink out of the share: before the upload starts, and after the host has taken it
 * but before it writes (the window between checking the folder and using it). Nothing may be
 * written outside the share, and the upload fails with PATH_ESCAPE.
 */
import assert from "node:assert/strict";
import { mkdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { TeleportClient } from "../../src/client/client.js";
import { Feature } from "../../src/wire/messages.js";
import { runCli, STACK_TRACE_LINE } from "../helpers/cli.js";
import { dirEntry, fileFrames, hostile, serveHostile } from "../helpers/hostile-host.js";
import { hostWithCli, makeShare } from "../helpers/share.js";
import { snapshotTree } from "../helpers/tree.js";

const DATA = Buffer.from("uploaded\n");

async function uploadHost(t: TestContext, label: string) {
  const { base, share, env } = await makeShare(t, label);
  await mkdir(join(base, "outside", "sub"), { recursive: true });
  await writeFile(join(base, "outside", "victim.txt"), "the host's own\n");
  const host = await hostWithCli(t, { base, share, args: ["--allow-upload"] });
  return { base, share, env, host, writeLink: host.writeLink as string };
}

/** Everything outside the share and the homes, to compare before and after. */
async function outsideTheShare(base: string): Promise<string[]> {
  const tree = await snapshotTree(base, { ignore: ["share", "host-home", "client-home", "src"] });
  return [...tree.entries()].map(([path, node]) => `${path} ${node.kind} ${node.size} ${node.target}`);
}

test("a folder on push --path that is a symlink out of the share is refused, nothing made outside", async (t) => {
  const { base, share, env, writeLink } = await uploadHost(t, "push-race-before");
  await symlink(join(base, "outside"), join(share, "in"));
  const src = join(base, "src");
  await mkdir(src);
  await writeFile(join(src, "a.txt"), DATA);
  const before = await outsideTheShare(base);

  for (const path of ["in", "in/new", "in/sub/deeper"]) {
    const result = await runCli(["push", src, writeLink, "--path", path], env);
    assert.notEqual(result.code, 0, `push --path ${path} succeeded`);
    assert.match(result.stderr, /TELEPORT_ERR_PATH_ESCAPE/);
    assert.doesNotMatch(result.stderr, STACK_TRACE_LINE);
  }
  assert.deepEqual(await outsideTheShare(base), before);
});

test("the upload folder swapped for a symlink after the host took the upload: nothing written outside", async (t) => {
  const { base, share, env, host, writeLink } = await uploadHost(t, "push-race-during");
  const before = await outsideTheShare(base);
  // The folder swapped (in/sub), and a folder above it (in): each the way out of the share.
  const swaps = [
    { path: "in/sub", swap: "in/sub" },
    { path: "up/sub", swap: "up" },
  ];
  for (const { path, swap } of swaps) {
    const client = await TeleportClient.connect(writeLink, { upload: true, transport: "tcp" });
    const stream = await client.upload({ path, source: "", bytes: DATA.length, files: 1 });
    // Taken: the host made and checked the folder. A local user swaps it now, before any write.
    await rename(join(share, swap), join(base, `moved-${swap.replace("/", "-")}`));
    await symlink(join(base, "outside"), join(share, swap));
    const seen = { chunkRequests: 0 };
    const steps = [hostile.entries([dirEntry("")]), ...fileFrames("escaped.txt", DATA)];
    const connection = serveHostile(stream.stream, steps, () => DATA, { features: Feature.HARD_LINKS, seen });
    await connection.closed;
    await rm(join(base, `moved-${swap.replace("/", "-")}`), { recursive: true });
  }
  assert.deepEqual(await outsideTheShare(base), before);
  assert.match(host.stderr(), /TELEPORT_ERR_PATH_ESCAPE/);

  // The host still takes an honest push.
  const src = join(base, "src");
  await mkdir(src);
  await writeFile(join(src, "ok.txt"), DATA);
  const pushed = await runCli(["push", src, writeLink, "--path", "fine"], env);
  assert.equal(pushed.code, 0, pushed.stderr);
});
