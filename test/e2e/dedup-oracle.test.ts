/**
 * The dedup oracle: what a pull does not ask for tells the host which chunks this machine holds.
 * `pull --reuse` bounds what the host can learn, measured here at the host (the chunks it is
 * asked for): `all` reuses any file the index knows (a seed outside the destination), `dest`
 * only the destination's own old copies, `none` nothing.
 */
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import type { PullSummary } from "../../src/client/pull.js";
import { type CliEnv, runCli } from "../helpers/cli.js";
import { hostInProcess, makeShare } from "../helpers/share.js";
import { MiB, pseudoRandomBytes } from "../helpers/tree.js";

const SIZE = 8 * MiB;

interface Oracle {
  base: string;
  env: CliEnv;
  url: string;
  content: Buffer;
  /** Chunk bytes the host was asked for since the last call. */
  askedFor(): number;
}

/** A host of one file, and a client whose index knows a copy of it outside any destination. */
async function seededClient(t: TestContext, label: string): Promise<Oracle> {
  const { base, share } = await makeShare(t, label);
  const content = pseudoRandomBytes(SIZE, label);
  await writeFile(join(share, "secret-plans.pdf"), content);
  let asked = 0;
  const host = await hostInProcess(t, {
    base,
    share,
    faults: {
      beforeChunk: async (request) => {
        asked += request.size;
      },
    },
  });
  const env = { TELEPORT_HOME: join(base, "client-home") };
  const seed = join(base, "elsewhere");
  await mkdir(seed);
  await writeFile(join(seed, "my-copy.pdf"), content);
  const indexed = await runCli(["index", seed], env);
  assert.equal(indexed.code, 0, indexed.stderr);
  return {
    base,
    env,
    url: host.url,
    content,
    askedFor: () => {
      const value = asked;
      asked = 0;
      return value;
    },
  };
}

async function pullWith(oracle: Oracle, dest: string, reuse: string[]): Promise<PullSummary> {
  const result = await runCli(["pull", oracle.url, dest, "--json", ...reuse], oracle.env);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(await readFile(join(dest, "secret-plans.pdf")), oracle.content);
  return JSON.parse(result.stdout) as PullSummary;
}

test("pull --reuse all (the default): the host sees a file held elsewhere on this machine go unasked", async (t) => {
  const oracle = await seededClient(t, "oracle-all");
  const summary = await pullWith(oracle, join(oracle.base, "dest"), []);
  assert.equal(summary.reused.index, SIZE);
  assert.equal(oracle.askedFor(), 0, "the host learns this machine holds every chunk");
});

test("pull --reuse dest: files elsewhere are not used, so the host learns nothing of them", async (t) => {
  const oracle = await seededClient(t, "oracle-dest");
  const dest = join(oracle.base, "dest");
  const first = await pullWith(oracle, dest, ["--reuse", "dest"]);
  assert.equal(first.reused.index, 0);
  assert.equal(oracle.askedFor(), SIZE, "every chunk asked for");
  // The destination's own old copy is still used.
  const again = await pullWith(oracle, dest, ["--reuse", "dest"]);
  assert.equal(again.reused.existing, SIZE);
  assert.equal(oracle.askedFor(), 0);
});

test("pull --reuse none: every chunk is fetched, even the destination's old copy", async (t) => {
  const oracle = await seededClient(t, "oracle-none");
  const dest = join(oracle.base, "dest");
  await pullWith(oracle, dest, ["--reuse", "none"]);
  assert.equal(oracle.askedFor(), SIZE);
  const again = await pullWith(oracle, dest, ["--reuse", "none"]);
  assert.equal(again.bytesReused, 0);
  assert.equal(oracle.askedFor(), SIZE, "the old copy at the destination told the host nothing");
  const bad = await runCli(["pull", oracle.url, dest, "--reuse", "some"], oracle.env);
  assert.equal(bad.code, 2, bad.stderr);
});
