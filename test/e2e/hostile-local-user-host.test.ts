/**
 * A local user of the host's machine who can write inside the share and holds the link: while a
 * manifest waits for credit, or between a request's check and its open, they swap folders for
 * symlinks out of the share and files for FIFOs. The host (a real `teleport host` process) must
 * never read outside the share and never block.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { type ManifestEvent, TeleportClient } from "../../src/client/client.js";
import type { ChunkRequest } from "../../src/wire/messages.js";
import { onCleanup } from "../helpers/context.js";
import { hostInProcess, hostWithCli, makeShare } from "../helpers/share.js";

const VICTIM_MARKER = "VICTIM-PRIVATE-KEY";
/** More files than a manifest's credit window lists before it waits (~200 bytes of frames each). */
const FILLER_FILES = 2000;

function fillerName(i: number): string {
  return `f${String(i).padStart(4, "0")}`;
}

/** Connects to a host of `share` run by the CLI, as the local user holding the link. */
async function connect(t: TestContext, base: string, share: string): Promise<TeleportClient> {
  const host = await hostWithCli(t, { base, share });
  const client = await TeleportClient.connect(host.link);
  onCleanup(t, () => client.close());
  return client;
}

/** Every event of a manifest after `first`, with a deadline: a frozen host fails the test. */
async function rest(events: AsyncGenerator<ManifestEvent>, what: string): Promise<ManifestEvent[]> {
  const all: ManifestEvent[] = [];
  const deadline = AbortSignal.timeout(60_000);
  for (;;) {
    const step = await Promise.race([
      events.next(),
      new Promise<never>((_, reject) =>
        deadline.addEventListener("abort", () => reject(new Error(`${what}: the host froze`)), {
          once: true,
        }),
      ),
    ]);
    if (step.done) return all;
    all.push(step.value);
  }
}

/** The chunk requests a client would send for the files of `events`. */
function chunkRequests(events: readonly ManifestEvent[]): ChunkRequest[] {
  const requests: ChunkRequest[] = [];
  let path = "";
  for (const event of events) {
    if (event.kind === "file-begin") path = event.entry.path;
    if (event.kind === "chunks") for (const chunk of event.chunks) requests.push({ ...chunk, path });
  }
  return requests;
}

test("a folder swapped for a symlink out of the share while a manifest waits for credit is never walked into", async (t) => {
  const { base, share } = await makeShare(t, "folder-swap");
  const victim = join(base, "victim");
  await mkdir(join(share, "d"));
  await mkdir(victim);
  const victimContent = (i: number) => `${VICTIM_MARKER} ${i} ${"k".repeat(40)}\n`;
  const fillerContent = (i: number) => `inside ${i}\n`;
  for (let i = 0; i < FILLER_FILES; i++) {
    await writeFile(join(share, "d", fillerName(i)), fillerContent(i));
    await writeFile(join(victim, fillerName(i)), victimContent(i)); // the same names: whatever is left
  }
  const client = await connect(t, base, share);

  const manifest = client.manifest("d");
  const first = await manifest.next(); // the host now waits for credit, far from the end of d
  assert.equal(first.done, false);
  await rename(join(share, "d"), join(share, "d-moved"));
  await symlink("../victim", join(share, "d"));
  const events = [first.value as ManifestEvent, ...(await rest(manifest, "manifest of d"))];

  const sizes = events.flatMap((event) => (event.kind === "file-begin" ? [event.entry.size] : []));
  assert.ok(sizes.length > 100, `${sizes.length} files listed`);
  const victimSizes = new Set(Array.from({ length: FILLER_FILES }, (_, i) => victimContent(i).length));
  const listedFromVictim = sizes.filter((size) => victimSizes.has(size));
  assert.deepEqual(listedFromVictim, [], "files of the victim's folder were listed");

  const received: Buffer[] = [];
  await client
    .fetchChunks(chunkRequests(events), (_request, data) => received.push(Buffer.from(data)))
    .catch(() => {}); // refused (d is a symlink now) is right; what matters is what came back
  const leaked = received.filter((data) => data.includes(VICTIM_MARKER));
  assert.equal(leaked.length, 0, `${leaked.length} chunks of the victim's files were served`);
});

test("files swapped for FIFOs while a manifest waits for credit neither freeze the host nor get served", async (t) => {
  const { base, share } = await makeShare(t, "fifo-swap");
  await mkdir(join(share, "d"));
  // Files above the small-file size are opened when their turn comes, not when walked: many of
  // them, so the walk is well ahead of the sending when the credit runs out.
  const content = randomBytes(4 * 1024 * 1024 + 1);
  const names = Array.from({ length: 64 }, (_, i) => fillerName(i));
  for (const name of names) await writeFile(join(share, "d", name), content);
  const client = await connect(t, base, share);

  const manifest = client.manifest("d");
  const first = await manifest.next();
  assert.equal(first.done, false);
  const paths = names.map((name) => join(share, "d", name));
  await Promise.all(paths.map((path) => rm(path)));
  execFileSync("mkfifo", paths);
  await rest(manifest, "manifest of d");

  const top = await client.stat("");
  assert.equal(top.path, "", "the host still answers");
});

test("bytes a manifest kept are not served once their folder has moved out of the share, even behind a symlink to it", async (t) => {
  const { base, share } = await makeShare(t, "kept-moved-out");
  await mkdir(join(share, "d"));
  for (let i = 0; i < 32; i++) await writeFile(join(share, "d", fillerName(i)), `${VICTIM_MARKER} ${i}\n`);
  const client = await connect(t, base, share);
  const events = await rest(client.manifest("d"), "manifest of d"); // small files: kept in memory

  // The same files (same inodes) now lie outside, and d leads there.
  await rename(join(share, "d"), join(base, "d-out"));
  await symlink("../d-out", join(share, "d"));
  const received: Buffer[] = [];
  const fetched = client.fetchChunks(chunkRequests(events), (_request, data) => received.push(data));
  await assert.rejects(fetched, /TELEPORT_ERR_PATH_ESCAPE|TELEPORT_ERR_NOT_FOUND/);
  assert.equal(received.length, 0, "chunks of files outside the share were served");
});

test("small files a manifest kept are served without opening them again", async (t) => {
  const { base, share } = await makeShare(t, "kept-served");
  const contents = Array.from({ length: 200 }, () => randomBytes(4096));
  await mkdir(join(share, "d"));
  for (const [i, content] of contents.entries()) await writeFile(join(share, "d", fillerName(i)), content);
  const host = await hostInProcess(t, { base, share });
  const opened: string[] = [];
  const openFile = host.share.openFile.bind(host.share);
  host.share.openFile = (wirePath) => {
    opened.push(wirePath);
    return openFile(wirePath);
  };
  const client = await TeleportClient.connect(host.link);
  onCleanup(t, () => client.close());

  const requests = chunkRequests(await rest(client.manifest("d"), "manifest of d"));
  const received = new Map<string, Buffer>();
  await client.fetchChunks(requests, (request, data) => received.set(request.path, Buffer.from(data)));
  for (const [i, content] of contents.entries())
    assert.deepEqual(received.get(`d/${fillerName(i)}`), content);
  assert.deepEqual(opened, [], "a GET_CHUNKS answered from memory opened the files it named");
});

test("a folder swapped for a symlink out of the share between a request's check and its open is never read through", async (t) => {
  const { base, share } = await makeShare(t, "open-race");
  const victim = join(base, "victim");
  const names = Array.from({ length: 64 }, (_, i) => fillerName(i)); // more than a connection keeps open
  await mkdir(join(share, "d"));
  await mkdir(victim);
  const inside = Buffer.alloc(64, "i");
  for (const name of names) {
    await writeFile(join(share, "d", name), inside);
    await writeFile(join(victim, name), Buffer.from(VICTIM_MARKER.padEnd(64, "!")));
  }
  await symlink("../victim", join(share, "d-link"));
  const client = await connect(t, base, share);

  // The local user flips d between the real folder and the symlink as fast as they can.
  const swapper = spawnSwapper(t, share);
  let leaked = 0;
  let served = 0;
  for (let round = 0; round < 4000 && leaked === 0; round++) {
    const name = names[round % names.length] ?? "";
    try {
      for await (const piece of client.readRange(`d/${name}`, 0, 64)) {
        served++;
        if (piece.includes(VICTIM_MARKER)) leaked++;
      }
    } catch {
      // Refused or not found mid-swap: right.
    }
  }
  swapper.kill();
  assert.equal(leaked, 0, `read the victim's file through the swapped folder (${served} ranges served)`);
});

/** A process renaming share/d and share/d-link into each other's place, in a loop. */
function spawnSwapper(t: TestContext, share: string): ChildProcess {
  const script = `
    const { renameSync } = require("node:fs");
    const at = (name) => ${JSON.stringify(share)} + "/" + name;
    for (;;) {
      renameSync(at("d"), at("d-real"));
      renameSync(at("d-link"), at("d"));
      renameSync(at("d"), at("d-link"));
      renameSync(at("d-real"), at("d"));
    }`;
  const child = spawn(process.execPath, ["-e", script], { stdio: "ignore" });
  onCleanup(t, () => {
    child.kill("SIGKILL");
  });
  return child;
}
