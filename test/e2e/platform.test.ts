/**
 * The platform layer through the CLI: the host sets the congestion control it is asked for on
 * its connections, or says once that it cannot and serves anyway; large files are preallocated
 * at the destination and come out identical. Runs with the native addon where it is built and,
 * under TELEPORT_NATIVE=0, on the portable path (npm test runs this file both ways).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import type { PullSummary } from "../../src/client/pull.js";
import { platformIo } from "../../src/platform/io.js";
import { runCli, startHost } from "../helpers/cli.js";
import { onCleanup, tempDir } from "../helpers/context.js";
import { compareTrees, makeTree } from "../helpers/tree.js";

async function hostWith(t: Parameters<typeof tempDir>[0], args: string[]) {
  const base = await tempDir(t, "platform");
  const share = join(base, "share");
  const info = await makeTree(share);
  const host = await startHost(share, { home: join(base, "host-home"), args });
  onCleanup(t, () => host.stop());
  return { base, share, info, host, env: { TELEPORT_HOME: join(base, "client-home") } };
}

test("host --congestion reno: set on the host's connections, the pull identical", async (t) => {
  const { base, share, info, host, env } = await hostWith(t, ["--congestion", "reno"]);
  const result = await runCli(["pull", host.link, join(base, "dest"), "--json"], env);
  assert.equal(result.code, 0, result.stderr);
  assert.ok((JSON.parse(result.stdout) as PullSummary).bytes > 0);
  await compareTrees(share, join(base, "dest"), { ignore: info.outsideLinks });
  const said = host.stderr();
  if (platformIo.kind === "native") assert.doesNotMatch(said, /congestion control/);
  else assert.match(said, /cannot set TCP congestion control reno without the native addon/);
});

test("host --congestion the kernel lacks: said once, and the host serves with the system's", async (t) => {
  const { base, share, info, host, env } = await hostWith(t, ["--congestion", "no_such_cc"]);
  const result = await runCli(["pull", host.link, join(base, "dest"), "--json", "--streams", "4"], env);
  assert.equal(result.code, 0, result.stderr);
  await compareTrees(share, join(base, "dest"), { ignore: info.outsideLinks });
  const notices = host.stderr().match(/congestion control no_such_cc/g) ?? [];
  assert.equal(notices.length, 1, host.stderr());
  if (platformIo.kind === "native")
    assert.match(host.stderr(), /is not available here; the system's \(\w+\) is used/);
});

test("host --congestion with a malformed name: a usage error, exit 2", async (t) => {
  const base = await tempDir(t, "platform-usage");
  const result = await runCli(["host", base, "--congestion", "BBR; rm"], {
    TELEPORT_HOME: join(base, "home"),
  });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /congestion control's name/);
});
