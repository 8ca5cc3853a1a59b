/**
 * A hostile host, helped by a local user, must not make a pull link, write or reserve anything
 * outside its destination (issue 20, items 2, 4 and 7): each test is one attack, on a real
 * host process's frames and the real file system, with a "victim" folder beside the destination
 * that must come out as it went in.
 */
import assert from "node:assert/strict";
import { existsSync, lstatSync } from "node:fs";
import { chmod, mkdir, readdir, readFile, rename, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { TeleportClient } from "../../src/client/client.js";
import { pull } from "../../src/client/pull.js";
import { ErrorCode, TeleportError } from "../../src/errors.js";
import { type ChunkRef, Feature, MAX_CHUNK_SIZE } from "../../src/wire/messages.js";
import { runCli } from "../helpers/cli.js";
import { onCleanup, tempDir, waitFor } from "../helpers/context.js";
import {
  dirEntry,
  fileEntry,
  fileFrames,
  type HostileHost,
  type HostileOptions,
  hardLinkEntry,
  hostile,
  type ScriptStep,
  startHostileHost,
  symlinkEntry,
} from "../helpers/hostile-host.js";
import { findPartFiles, snapshotTree } from "../helpers/tree.js";

const SECRET = Buffer.from("-----BEGIN OPENSSH PRIVATE KEY----- not yours\n");

/** base/{dest, victim/secret.txt, home}: the victim folder is another user's, say ~victim/.ssh. */
async function setUp(t: TestContext) {
  const base = await tempDir(t, "links");
  const dest = join(base, "dest");
  const victim = join(base, "victim");
  await mkdir(dest);
  await mkdir(victim);
  await writeFile(join(victim, "secret.txt"), SECRET);
  return { base, dest, victim, home: join(base, "home") };
}

type Setup = Awaited<ReturnType<typeof setUp>>;

async function pullFrom(
  t: TestContext,
  setup: Setup,
  script: ScriptStep[],
  options: HostileOptions & {
    content?: (path: string) => Buffer;
    started?: (host: HostileHost) => void;
  } = {},
) {
  const host = await startHostileHost(setup.home, script, options.content, options);
  onCleanup(t, () => host.close());
  options.started?.(host);
  const client = await TeleportClient.connect(host.link);
  onCleanup(t, () => client.close());
  const before = await snapshotTree(setup.victim);
  const outcome = await pull(client, { dest: setup.dest, remotePath: "" }).then(
    (summary) => ({ summary, error: undefined }),
    (error: unknown) => ({ summary: undefined, error }),
  );
  assert.deepEqual(await snapshotTree(setup.victim), before, "the victim folder changed");
  assert.deepEqual((await readdir(setup.base)).sort(), ["dest", "home", "victim"]);
  assert.deepEqual(await findPartFiles(setup.dest), []);
  return outcome;
}

function assertRefused(error: unknown, code: ErrorCode): void {
  assert.ok(error instanceof TeleportError, `expected a TeleportError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
}

test("a symlink's .. after a symlink (a/s -> .., a/t -> s/../victim/secret.txt) is refused", async (t) => {
  const setup = await setUp(t);
  const { error } = await pullFrom(t, setup, [
    hostile.entries([
      dirEntry(""),
      dirEntry("a"),
      symlinkEntry("a/s", ".."),
      symlinkEntry("a/t", "s/../victim/secret.txt"),
    ]),
  ]);
  assertRefused(error, ErrorCode.PATH_ESCAPE);
  assert.equal(lstatSync(join(setup.dest, "a/t"), { throwIfNoEntry: false }), undefined);
});

test("a HARDLINK to a file the pull never created is not linked", async (t) => {
  const setup = await setUp(t);
  // A file of the puller's in the destination, which the host never sent.
  await writeFile(join(setup.dest, "mine.txt"), SECRET);
  const { summary, error } = await pullFrom(
    t,
    setup,
    [hostile.entries([dirEntry(""), dirEntry("pub"), hardLinkEntry("pub/leak", "mine.txt")])],
    { features: Feature.HARD_LINKS },
  );
  assert.equal(error, undefined);
  assert.deepEqual(
    summary?.failures.map((failure) => [failure.path, failure.code]),
    [["pub/leak", ErrorCode.PATH_ESCAPE]],
  );
  assert.equal(existsSync(join(setup.dest, "pub/leak")), false);
});

test("a HARDLINK entry without the hard-links feature is refused", async (t) => {
  const setup = await setUp(t);
  const data = Buffer.from("shared bytes");
  const { error } = await pullFrom(
    t,
    setup,
    [hostile.entries([dirEntry("")]), ...fileFrames("f", data), hostile.entries([hardLinkEntry("g", "f")])],
    { content: () => data },
  );
  assertRefused(error, ErrorCode.PROTOCOL);
  assert.equal(existsSync(join(setup.dest, "g")), false);
});

test("a folder a local user swaps for a symlink between two files is not written through", async (t) => {
  const setup = await setUp(t);
  const first = Buffer.from("first file");
  const second = Buffer.from("second file, which must not land in the victim's folder");
  const folder = join(setup.dest, "p/d");
  const swap = async () => {
    await waitFor(() => existsSync(join(folder, "a")), { what: "p/d/a committed" });
    // The local user's move, while the host holds the manifest.
    await rename(folder, join(setup.dest, "p/d-moved"));
    await symlink(setup.victim, folder);
  };
  const { error } = await pullFrom(
    t,
    setup,
    [
      hostile.entries([dirEntry(""), dirEntry("p"), dirEntry("p/d")]),
      ...fileFrames("p/d/a", first),
      { pause: swap },
      ...fileFrames("p/d/b", second),
    ],
    { content: (path) => (path.endsWith("a") ? first : second) },
  );
  assert.equal(error, undefined);
  assert.equal(existsSync(join(setup.victim, "b")), false);
  assert.equal(existsSync(join(setup.dest, "p/d-moved/b")), true);
});

test("an old copy behind a folder swapped for a symlink is not read through: the host's file is fetched, not the victim's vouched for", async (t) => {
  // The victim holds the host's bytes; the destination's own old copies differ. Reading the old
  // copies through the swapped-in symlink would tell the host (by what is not asked for) that the
  // victim holds them, and keep the destination's different bytes as if they were the host's.
  const setup = await setUp(t);
  const folder = join(setup.dest, "p/d");
  const first = Buffer.from("first file");
  const small = Buffer.from("a small file the victim holds too\n");
  const large = Buffer.alloc(200 * 1024, "a larger file the victim holds too, indexed when probed\n");
  await mkdir(folder, { recursive: true });
  for (const [name, data] of [
    ["small", small],
    ["large", large],
  ] as const) {
    await writeFile(join(folder, name), Buffer.alloc(data.length, "x")); // this pull's own old copy
    await writeFile(join(setup.victim, name), data);
  }
  const swap = async () => {
    await waitFor(() => existsSync(join(folder, "a")), { what: "p/d/a committed" });
    await rename(folder, join(setup.dest, "p/d-moved"));
    await symlink(setup.victim, folder);
  };
  const content = (path: string) => (path.endsWith("small") ? small : path.endsWith("large") ? large : first);
  const host = await startHostileHost(
    setup.home,
    // The pull asks for a changed file's own manifest (to reuse its old copy's chunks).
    (path) =>
      path === "p/d/large"
        ? fileFrames("p/d/large", large)
        : [
            hostile.entries([dirEntry(""), dirEntry("p"), dirEntry("p/d")]),
            ...fileFrames("p/d/a", first),
            { pause: swap },
            ...fileFrames("p/d/small", small),
            ...fileFrames("p/d/large", large),
          ],
    content,
  );
  onCleanup(t, () => host.close());
  const result = await runCli(["pull", host.link, setup.dest, "--no-progress"], {
    TELEPORT_HOME: join(setup.base, "client-home"),
  });
  assert.equal(result.code, 0, result.stderr);
  const moved = join(setup.dest, "p/d-moved");
  assert.deepEqual(
    await readFile(join(moved, "small")),
    small,
    "the small file kept the destination's other bytes",
  );
  assert.deepEqual(
    await readFile(join(moved, "large")),
    large,
    "the large file kept the destination's other bytes",
  );
  assert.deepEqual(await readFile(join(setup.victim, "small")), small);
  assert.deepEqual(await readFile(join(setup.victim, "large")), large);
});

test("folders and files sent 0777/0666 get the umask and never group or other write", async (t) => {
  const setup = await setUp(t);
  const data = Buffer.from("open to all?");
  const { error } = await pullFrom(
    t,
    setup,
    [
      hostile.entries([dirEntry(""), { ...dirEntry("open"), mode: 0o777 }]),
      ...fileFrames("open/f", data, 0o666),
    ],
    { content: () => data },
  );
  assert.equal(error, undefined);
  assert.equal((await stat(join(setup.dest, "open"))).mode & 0o022, 0);
  assert.equal((await stat(join(setup.dest, "open/f"))).mode & 0o022, 0);
});

test("the destination keeps its own mode and mtime, whatever the share root's", async (t) => {
  const setup = await setUp(t);
  await chmod(setup.dest, 0o700);
  const { error } = await pullFrom(t, setup, [hostile.entries([{ ...dirEntry(""), mode: 0o777 }])]);
  assert.equal(error, undefined);
  const stats = await stat(setup.dest);
  assert.equal((stats.mode & 0o777).toString(8), "700");
});

test("the destination's mtime is not the share root's", async (t) => {
  const setup = await setUp(t);
  const { error } = await pullFrom(t, setup, [hostile.entries([dirEntry("")])]);
  assert.equal(error, undefined);
  assert.notEqual((await stat(setup.dest)).mtimeMs, dirEntry("").mtimeMs);
});

test("a 16 GiB chunk list reserves no more than the pull's allowance before any data", async (t) => {
  const setup = await setUp(t);
  const size = 16 * 1024 ** 3;
  const chunks: ChunkRef[] = [];
  for (let offset = 0; offset < size; offset += MAX_CHUNK_SIZE)
    chunks.push({ offset, size: MAX_CHUNK_SIZE, hash: Buffer.alloc(32, offset / MAX_CHUNK_SIZE) });
  // Frames under the 64 KiB a manifest frame may take without credit: 4 GiB of chunks each.
  const frames = [0, 1, 2, 3].map((i) => hostile.chunks(chunks.slice(i * 1024, (i + 1) * 1024)));
  let host: HostileHost | undefined;
  let reserved = Number.NaN;
  const measure = async () => {
    // Chunks are asked for only after their frame was taken in (and any reservation made).
    await waitFor(() => (host?.chunkRequests ?? 0) > 0, { what: "a chunk request" });
    const [part] = await findPartFiles(setup.dest);
    assert.ok(part !== undefined, "no part file");
    reserved = (await stat(join(setup.dest, part))).blocks * 512;
    await host?.close(); // the pull fails: the host is gone
  };
  const outcome = await pullFrom(
    t,
    setup,
    [
      hostile.entries([dirEntry("")]),
      hostile.fileBegin(fileEntry("huge", size)),
      ...frames,
      { pause: measure },
    ],
    { serveChunks: false, started: (started) => (host = started) },
  );
  assert.ok(!Number.isNaN(reserved), `not measured: ${String(outcome.error)}`);
  assert.ok(reserved <= 256 * 1024 * 1024, `${reserved} bytes reserved before any data`);
});
