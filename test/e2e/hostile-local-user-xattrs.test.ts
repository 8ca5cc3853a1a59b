/**
 * Extended attributes against a local user who swaps a folder for a symlink (issue 20, items 1
 * and 4, the last calls that went by path): on the host, while a manifest waits for credit, the
 * attributes sent must be those of the files the walk opened, never the victim's the symlink
 * leads to; on the client, while a hostile host pauses the pull, attributes must go on the files
 * the pull holds open, never on the victim's file of the same name. Real processes and the real
 * file system; the tests tag their fixtures through the addon (test/helpers/xattrs.ts), so under
 * TELEPORT_NATIVE=0 they check that the portable mode, which has no xattr calls, sends and sets
 * none at all.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readdir, rename, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { type ManifestEvent, TeleportClient } from "../../src/client/client.js";
import { platformIo } from "../../src/platform/io.js";
import { Feature, type FileBegin, fileBeginCodec, MessageType, type Xattr } from "../../src/wire/messages.js";
import { runCli } from "../helpers/cli.js";
import { onCleanup, tempDir, waitFor } from "../helpers/context.js";
import {
  dirEntry,
  fileEntry,
  fileFrames,
  frameOf,
  hostile,
  startHostileHost,
} from "../helpers/hostile-host.js";
import { hostWithCli, makeShare } from "../helpers/share.js";
import { describeXattrs, fixtureIo, readXattrsAt, writeXattrsAt, xattr } from "../helpers/xattrs.js";

const VICTIM_MARKER = "VICTIM-PRIVATE";
/** More files than a manifest's credit window lists before it waits (~200 bytes of frames each). */
const FILLER_FILES = 2000;

/** Tags `path` with `xattrs` through the addon; false (the test skipped) where it cannot. */
function tag(t: TestContext, path: string, xattrs: readonly Xattr[]): boolean {
  if (fixtureIo === undefined) {
    t.skip("the native addon is not built: the test cannot give its files extended attributes");
    return false;
  }
  if (!writeXattrsAt(path, xattrs, fixtureIo)) {
    t.skip(`the file system of ${path} has no user extended attributes`);
    return false;
  }
  return true;
}

function attributesOf(path: string): string[] | undefined {
  return describeXattrs(readXattrsAt(path, fixtureIo));
}

/** Every event of a manifest, with a deadline: a frozen host fails the test. */
async function rest(events: AsyncGenerator<ManifestEvent>): Promise<ManifestEvent[]> {
  const all: ManifestEvent[] = [];
  const deadline = AbortSignal.timeout(60_000);
  const frozen = new Promise<never>((_, reject) =>
    deadline.addEventListener("abort", () => reject(new Error("the host froze")), { once: true }),
  );
  frozen.catch(() => {}); // raced below; unhandled only if nothing awaits it any more
  for (;;) {
    const step = await Promise.race([events.next(), frozen]);
    if (step.done) return all;
    all.push(step.value);
  }
}

test("host: a folder swapped for a symlink while a manifest waits for credit never sends the victim's xattrs", async (t) => {
  const { base, share } = await makeShare(t, "xattr-host-swap");
  const victim = join(base, "victim");
  await mkdir(join(share, "d"));
  await mkdir(victim);
  const name = (i: number) => `f${String(i).padStart(4, "0")}`;
  for (let i = 0; i < FILLER_FILES; i++) {
    await writeFile(join(share, "d", name(i)), `inside ${i}\n`);
    await writeFile(join(victim, name(i)), `victim ${i}\n`); // the same names: whatever is left
  }
  if (!tag(t, join(victim, name(0)), [xattr("user.secret", VICTIM_MARKER)])) return;
  for (let i = 0; i < FILLER_FILES; i++) {
    writeXattrsAt(join(share, "d", name(i)), [xattr("user.origin", "inside")], fixtureIo);
    writeXattrsAt(join(victim, name(i)), [xattr("user.secret", `${VICTIM_MARKER} ${i}`)], fixtureIo);
  }
  const host = await hostWithCli(t, { base, share });
  const client = await TeleportClient.connect(host.link, { xattrs: true });
  onCleanup(t, () => client.close());

  const manifest = client.manifest("d");
  const first = await manifest.next(); // the host now waits for credit, far from the end of d
  assert.equal(first.done, false);
  await rename(join(share, "d"), join(share, "d-moved"));
  await symlink("../victim", join(share, "d"));
  const events = [first.value as ManifestEvent, ...(await rest(manifest))];

  const begins = events.flatMap((event) => (event.kind === "file-begin" ? [event.entry] : []));
  assert.equal(begins.length, FILLER_FILES, "every file of d was listed, from the folder the walk held");
  const sent = (entry: FileBegin) => describeXattrs(entry.xattrs) ?? [];
  const leaked = begins.filter((entry) => sent(entry).some((text) => text.includes(VICTIM_MARKER)));
  assert.deepEqual(
    leaked.map((entry) => entry.path),
    [],
    "the victim's attributes were sent",
  );
  if (platformIo.kind === "native") {
    assert.equal(client.hostSendsXattrs, true);
    for (const entry of begins) assert.deepEqual(sent(entry), ["user.origin=inside"], entry.path);
  } else {
    assert.equal(client.hostSendsXattrs, false, "a portable host offers no extended attributes");
  }
});

/** A file's frames, its FILE_BEGIN carrying `xattrs`. */
function taggedFileFrames(path: string, data: Buffer, xattrs: Xattr[]) {
  const [, ...rest] = fileFrames(path, data);
  const begin: FileBegin = { ...fileEntry(path, data.length), xattrs };
  return [frameOf(MessageType.FILE_BEGIN, fileBeginCodec, begin), ...rest];
}

test("client: a folder swapped for a symlink mid-pull never gets the victim's file's xattrs set or read", async (t) => {
  const base = await tempDir(t, "xattr-client-swap");
  const dest = join(base, "dest");
  const victim = join(base, "victim");
  const folder = join(dest, "p/d");
  const kept = Buffer.from("the same bytes here, in the victim's folder and on the host\n");
  const fresh = Buffer.from("a file the destination did not have\n");
  await mkdir(folder, { recursive: true });
  await mkdir(victim);
  await writeFile(join(folder, "b"), kept); // an old copy the pull keeps, setting its attributes
  await writeFile(join(victim, "b"), kept);
  if (!tag(t, join(victim, "b"), [xattr("user.victim", "mine")])) return;
  const planted = [xattr("user.host", "planted")];
  const swap = async () => {
    // The local user's move while the host holds the manifest, p/d/a committed.
    await waitFor(() => existsSync(join(folder, "a")), { what: "p/d/a committed" });
    await rename(folder, join(dest, "p/d-moved"));
    await symlink(victim, folder);
  };
  const host = await startHostileHost(
    join(base, "host-home"),
    [
      hostile.entries([dirEntry(""), dirEntry("p"), dirEntry("p/d")]),
      ...taggedFileFrames("p/d/a", fresh, planted),
      { pause: swap },
      ...taggedFileFrames("p/d/b", kept, planted),
      ...taggedFileFrames("p/d/c", fresh, planted),
    ],
    (path) => (path.endsWith("b") ? kept : fresh),
    { features: Feature.XATTRS },
  );
  onCleanup(t, () => host.close());

  const result = await runCli(["pull", host.link, dest, "--xattrs", "--no-progress"], {
    TELEPORT_HOME: join(base, "client-home"),
  });

  assert.deepEqual(attributesOf(join(victim, "b")), ["user.victim=mine"], "the victim's file was changed");
  assert.deepEqual((await readdir(victim)).sort(), ["b"], "a file was written in the victim's folder");
  assert.equal(result.code, 0, result.stderr);
  const moved = join(dest, "p/d-moved");
  const expected = platformIo.kind === "native" ? ["user.host=planted"] : [];
  for (const file of ["a", "b", "c"]) assert.deepEqual(attributesOf(join(moved, file)), expected, file);
  if (platformIo.kind !== "native") assert.match(result.stderr, /pulling without extended attributes/);
});
