/**
 * The library keeps dedup and resume (issue 21): pullLink uses the CLI's chunk index in
 * TELEPORT_HOME unless told otherwise, so a library re-pull of what the real `teleport pull`
 * pulled moves no bytes; and every long library call stops on its AbortSignal with
 * TELEPORT_ERR_CANCELLED, leaving only complete files under their final names.
 */
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import {
  ChunkIndex,
  ErrorCode,
  type PullLinkSummary,
  pull,
  pullLink,
  TeleportClient,
} from "../../src/index.js";
import { runCli } from "../helpers/cli.js";
import { onCleanup } from "../helpers/context.js";
import { hostWithCli, makeShare, type ShareFiles, type ShareFolder } from "../helpers/share.js";
import { findPartFiles, isAbsent, MiB, pseudoRandomBytes } from "../helpers/tree.js";

/** Files over the journaling threshold (so an interrupted one is resumed), and a small one. */
const FILES: ShareFiles = {
  "a.bin": pseudoRandomBytes(2 * MiB, "library-a"),
  "b.bin": pseudoRandomBytes(2 * MiB, "library-b"),
  "sub/c.bin": pseudoRandomBytes(2 * MiB + 5, "library-c"),
  "sub/d.bin": pseudoRandomBytes(2 * MiB, "library-d"),
  "small.txt": "small\n",
};
const TOTAL_BYTES = Object.values(FILES).reduce((sum, content) => sum + content.length, 0);
/** Files this small bypass the index (src/chunking/thresholds.ts): always fetched. */
const SMALL_FILE_BYTES = FILES["small.txt"]?.length ?? 0;

/** A share of FILES hosted by the real `teleport host`; this process's TELEPORT_HOME is the client's. */
async function hostedShare(t: TestContext, label: string): Promise<ShareFolder & { link: string }> {
  const folder = await makeShare(t, label, FILES);
  const host = await hostWithCli(t, folder);
  const previous = process.env.TELEPORT_HOME;
  process.env.TELEPORT_HOME = folder.env.TELEPORT_HOME;
  onCleanup(t, () => {
    if (previous === undefined) delete process.env.TELEPORT_HOME;
    else process.env.TELEPORT_HOME = previous;
  });
  return { ...folder, link: host.link };
}

/** Every file of `dest` under its final name holds the bytes of the shared file by that name. */
async function assertOnlyCompleteFiles(dest: string): Promise<void> {
  const names = await readdir(dest, { recursive: true, withFileTypes: true });
  for (const entry of names) {
    if (!entry.isFile() || entry.name.endsWith(".teleport-part")) continue;
    const path = join(entry.parentPath, entry.name).slice(dest.length + 1);
    const expected = FILES[path];
    assert.ok(expected !== undefined, `unexpected file ${path}`);
    assert.ok((await readFile(join(dest, path))).equals(Buffer.from(expected)), `bytes of ${path}`);
  }
}

test("a library pull after the CLI's moves no bytes: pullLink uses the chunk index in TELEPORT_HOME", async (t) => {
  const { base, env, link } = await hostedShare(t, "library-dedup");
  const dest = join(base, "dest");
  const cli = await runCli(["pull", link, dest, "--json"], env);
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(JSON.parse(cli.stdout).bytesFromNetwork, TOTAL_BYTES);

  const again = await pullLink(link, { dest });
  assert.equal(again.bytesFromNetwork, 0, "the re-pull fetched bytes the CLI had pulled");
  assert.equal(again.bytes, TOTAL_BYTES);

  const elsewhere = await pullLink(link, { dest: join(base, "elsewhere") });
  assert.equal(elsewhere.bytesFromNetwork, SMALL_FILE_BYTES, "chunks the index knows were fetched again");
  assert.ok(elsewhere.reused.index > 0, `reused: ${JSON.stringify(elsewhere.reused)}`);
});

test("index: null pulls every byte; an index passed in is used and left open", async (t) => {
  const { base, link } = await hostedShare(t, "library-index-option");
  const dest = join(base, "dest");
  await pullLink(link, { dest });

  const without = await pullLink(link, { dest, index: null });
  assert.equal(without.bytesFromNetwork, TOTAL_BYTES);

  const own = ChunkIndex.open(join(base, "own-home"));
  onCleanup(t, () => own.close());
  const first = await pullLink(link, { dest: join(base, "own"), index: own });
  assert.equal(first.bytesFromNetwork, TOTAL_BYTES, "the own index is empty: TELEPORT_HOME's was used");
  assert.ok(own.stats().files > 0, "the pull did not record its files in the index passed");
  assert.equal((await pullLink(link, { dest: join(base, "own"), index: own })).bytesFromNetwork, 0);
});

test("an aborted library pull rejects with TELEPORT_ERR_CANCELLED, leaves only complete files, and resumes", async (t) => {
  const { base, link } = await hostedShare(t, "library-abort");
  const dest = join(base, "dest");
  const controller = new AbortController();
  let progressWhenAborted: number | undefined;
  const cancelled = pullLink(link, {
    dest,
    signal: controller.signal,
    onProgress: (event) => {
      if (event.type !== "bytes") return;
      progressWhenAborted ??= event.done;
      controller.abort();
    },
  });

  await assert.rejects(cancelled, { code: ErrorCode.CANCELLED });
  assert.ok(progressWhenAborted !== undefined && progressWhenAborted < TOTAL_BYTES, "aborted after the end");
  await assertOnlyCompleteFiles(dest);

  const resumed: PullLinkSummary = await pullLink(link, { dest });
  assert.equal(resumed.bytes, TOTAL_BYTES);
  assert.equal(resumed.bytesFromNetwork + resumed.bytesReused, TOTAL_BYTES);
  await assertOnlyCompleteFiles(dest);
  assert.deepEqual(await findPartFiles(dest), [], "part files left after the resumed pull");
});

test("a signal aborted before the call: pullLink, connect, pull, list, stat and readRange reject with TELEPORT_ERR_CANCELLED", async (t) => {
  const { base, link } = await hostedShare(t, "library-aborted");
  const aborted = AbortSignal.abort();
  const dest = join(base, "dest");

  await assert.rejects(pullLink(link, { dest, signal: aborted }), { code: ErrorCode.CANCELLED });
  assert.ok(await isAbsent(dest), "a cancelled pull made its destination");
  await assert.rejects(TeleportClient.connect(link, { signal: aborted }), { code: ErrorCode.CANCELLED });

  const client = await TeleportClient.connect(link);
  onCleanup(t, () => client.close());
  await assert.rejects(pull(client, { dest, signal: aborted }), {
    code: ErrorCode.CANCELLED,
  });
  assert.ok(await isAbsent(dest), "a cancelled pull made its destination");
  await assert.rejects(client.list("", { signal: aborted }).next(), { code: ErrorCode.CANCELLED });
  await assert.rejects(client.stat("a.bin", aborted), { code: ErrorCode.CANCELLED });
  await assert.rejects(client.readRange("a.bin", 0, 10, aborted).next(), { code: ErrorCode.CANCELLED });
  assert.equal(
    (await client.stat("a.bin")).size,
    2 * MiB,
    "the connection did not outlive the cancellations",
  );
});

test("a range read aborted mid-way rejects with TELEPORT_ERR_CANCELLED and the connection goes on", async (t) => {
  const { link } = await hostedShare(t, "library-range-abort");
  const client = await TeleportClient.connect(link);
  onCleanup(t, () => client.close());
  const controller = new AbortController();
  let pieces = 0;
  await assert.rejects(
    (async () => {
      for await (const _piece of client.readRange("sub/c.bin", 0, 2 * MiB + 5, controller.signal)) {
        pieces++;
        controller.abort();
      }
    })(),
    { code: ErrorCode.CANCELLED },
  );
  assert.equal(pieces, 1);
  const names: string[] = [];
  for await (const entry of client.list("", { recursive: true })) names.push(entry.path);
  assert.ok(names.includes("sub/c.bin"), `listed: ${names.join(", ")}`);
});
