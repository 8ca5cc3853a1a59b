/**
 * TELEPORT_HOME/config.json through the real CLI: its defaults apply to pull, a flag on the
 * command line overrides them, `teleport config` says where each setting came from, and a file
 * teleport cannot take is an error naming the file and the key, never ignored.
 */
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { PullSummary } from "../../src/client/pull.js";
import { runCli, STACK_TRACE_LINE } from "../helpers/cli.js";
import { hostWithCli, makeShare } from "../helpers/share.js";
import { MiB, pseudoRandomBytes } from "../helpers/tree.js";

async function writeConfig(home: string, text: string): Promise<string> {
  await mkdir(home, { recursive: true });
  const path = join(home, "config.json");
  await writeFile(path, text);
  return path;
}

test("config.json sets pull's defaults; flags on the command line override them", async (t) => {
  const { base, share } = await makeShare(t, "config-pull", {
    "payload.bin": pseudoRandomBytes(4 * MiB, "config"),
  });
  const host = await hostWithCli(t, { base, share });
  const home = join(base, "client-home");
  await writeConfig(home, JSON.stringify({ pull: { streams: 3, bwlimit: "2M", reuse: "none" } }));
  const env = { TELEPORT_HOME: home };

  const fromConfig = await runCli(["pull", host.link, join(base, "a"), "--json"], env);
  assert.equal(fromConfig.code, 0, fromConfig.stderr);
  const limited = JSON.parse(fromConfig.stdout) as PullSummary;
  assert.equal(limited.streamPool?.peakStreams, 3);
  assert.ok(limited.seconds >= 1.5, `4 MiB under the file's 2 MiB/s took ${limited.seconds.toFixed(2)} s`);

  const overridden = await runCli(
    ["pull", host.link, join(base, "b"), "--json", "--streams", "2", "--bwlimit", "1G"],
    env,
  );
  assert.equal(overridden.code, 0, overridden.stderr);
  const summary = JSON.parse(overridden.stdout) as PullSummary;
  assert.equal(summary.streamPool?.peakStreams, 2);
  assert.equal(summary.bytesReused, 0, "reuse: none still applies from the file");
  assert.ok(summary.seconds < limited.seconds, `${summary.seconds} s with --bwlimit 1G`);
});

test("config.json sets host's defaults; --bind on the command line overrides the file's", async (t) => {
  const { base, share } = await makeShare(t, "config-host", { "a.txt": "a" });
  // 192.0.2.1 (TEST-NET-1) is no address of this machine: a host that took it would not start.
  await writeConfig(
    join(base, "host-home"),
    JSON.stringify({ host: { quic: false, advertise: "localhost", bind: "192.0.2.1" } }),
  );
  const host = await hostWithCli(t, { base, share }); // started with --bind 127.0.0.1
  assert.match(host.link, /^teleport:\/\/localhost:\d+\//);
  assert.match(host.stderr(), /on port \d+ \(tcp\)/);
});

test("teleport config shows each setting and whether the file or teleport set it", async (t) => {
  const { base } = await makeShare(t, "config-show");
  const home = join(base, "client-home");
  const path = await writeConfig(
    home,
    JSON.stringify({ pull: { bwlimit: "10M", progress: false }, host: { quic: false } }),
  );
  const env = { TELEPORT_HOME: home };
  const where = await runCli(["config", "path"], env);
  assert.equal(where.stdout, `${path}\n`);
  const shown = await runCli(["config", "show", "--json"], env);
  assert.equal(shown.code, 0, shown.stderr);
  const { settings } = JSON.parse(shown.stdout) as {
    settings: { key: string; value: unknown; source: string }[];
  };
  const byKey = new Map(settings.map((line) => [line.key, line]));
  assert.deepEqual(byKey.get("pull.bwlimit"), { key: "pull.bwlimit", value: "10M", source: "config" });
  assert.deepEqual(byKey.get("pull.progress"), { key: "pull.progress", value: false, source: "config" });
  assert.deepEqual(byKey.get("host.quic"), { key: "host.quic", value: false, source: "config" });
  assert.deepEqual(byKey.get("pull.retries"), { key: "pull.retries", value: 5, source: "default" });
  const text = await runCli(["config"], env);
  assert.match(text.stdout, /^pull\.bwlimit +"10M" +config file$/m);
  assert.match(text.stdout, /^pull\.streams +\(tuned to the path\) +default$/m);
});

test("a config file teleport cannot take is TELEPORT_ERR_CONFIG naming the file and the key", async (t) => {
  const { base } = await makeShare(t, "config-bad");
  const home = join(base, "client-home");
  const env = { TELEPORT_HOME: home };
  const cases: [string, RegExp][] = [
    ['{"pull": {"streams": 4,}}', /is not valid JSON/],
    ['{"pull": {"stream": 4}}', /unknown key "pull\.stream"/],
    ['{"pull": {"bwlimit": "fast"}}', /"pull\.bwlimit": expected bytes per second/],
    ['{"pull": {"streams": 1000}}', /"pull\.streams": expected at most 256 streams/],
    ['{"pull": {"progress": "no"}}', /"pull\.progress" must be true or false/],
    ['{"pul": {}}', /unknown section "pul"/],
    ["[1, 2]", /the file must be a JSON object/],
  ];
  for (const [text, problem] of cases) {
    const path = await writeConfig(home, text);
    const result = await runCli(["pull", "-", join(base, "dest"), "--json"], env, { stdin: "" });
    assert.equal(result.code, 1, `${text}: ${result.stderr}`);
    assert.match(result.stderr, /TELEPORT_ERR_CONFIG/, text);
    assert.ok(result.stderr.includes(`config file ${path}: `), result.stderr);
    assert.match(result.stderr, problem);
    assert.match(result.stderr, /hint: /);
    assert.doesNotMatch(result.stderr, STACK_TRACE_LINE);
  }
  const shown = await runCli(["config"], env);
  assert.equal(shown.code, 1, "config show reports the broken file too");
});
