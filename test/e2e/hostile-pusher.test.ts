/**
 * A hostile pusher: a client with the write link that, once the host has taken its upload and
 * the two have swapped roles, answers the host's pull with frames of its own making — names
 * with `..`, absolute names, symlink chains out of the share, sizes it never sends, random
 * bytes. The host must write nothing outside the share, and go on serving others.
 */
import assert from "node:assert/strict";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { TeleportClient } from "../../src/client/client.js";
import { FRAME_HEADER_SIZE, writeFrameHeader } from "../../src/wire/frame.js";
import { Feature } from "../../src/wire/messages.js";
import { runCli } from "../helpers/cli.js";
import {
  dirEntry,
  fileEntry,
  fileFrames,
  hostile,
  type Script,
  serveHostile,
  symlinkEntry,
} from "../helpers/hostile-host.js";
import { hostWithCli, makeShare } from "../helpers/share.js";
import { MiB, pseudoRandomBytes, snapshotTree } from "../helpers/tree.js";

const DATA = Buffer.from("escaped\n");

/** Pushes as a hostile pusher: takes the upload, then answers the host's pull with `script`. */
async function hostilePush(
  writeLink: string,
  script: Script,
  declared = { bytes: DATA.length, files: 1 },
  content: (path: string) => Buffer = () => DATA,
): Promise<void> {
  const client = await TeleportClient.connect(writeLink, { upload: true, transport: "tcp" });
  const stream = await client.upload({ path: "in", source: "", ...declared });
  const seen = { chunkRequests: 0 };
  // Every script starts as an honest manifest does, with the root folder: what follows is what is tried.
  const root = hostile.entries([dirEntry("")]);
  const steps = typeof script === "function" ? (path: string) => [root, ...script(path)] : [root, ...script];
  const connection = serveHostile(stream.stream, steps, content, {
    features: Feature.HARD_LINKS,
    seen,
  });
  await connection.closed;
}

/** Everything in `base` but the share and the homes, to compare before and after. */
async function outsideTheShare(base: string): Promise<string[]> {
  const tree = await snapshotTree(base, { ignore: ["share", "host-home", "client-home"] });
  return [...tree.entries()].map(([path, node]) => `${path} ${node.kind} ${node.size} ${node.target}`);
}

async function uploadHost(t: TestContext, label: string, args: string[] = []) {
  const { base, share, env } = await makeShare(t, label);
  await mkdir(join(base, "outside"));
  await writeFile(join(base, "outside", "victim.txt"), "the host's own\n");
  const host = await hostWithCli(t, { base, share, args: ["--allow-upload", ...args] });
  return { base, share, env, host, writeLink: host.writeLink as string };
}

test("names with .., absolute names and symlink chains out of the share write nothing outside it", async (t) => {
  const { base, share, env, host, writeLink } = await uploadHost(t, "hostile-pusher");
  const before = await outsideTheShare(base);
  const scripts: Script[] = [
    fileFrames("../escape.txt", DATA),
    fileFrames("../../outside/escape.txt", DATA),
    fileFrames("/tmp/escape.txt", DATA),
    [hostile.entries([symlinkEntry("up", "..")]), ...fileFrames("up/escape.txt", DATA)],
    [
      hostile.entries([dirEntry("d"), symlinkEntry("d/s", ".."), symlinkEntry("d/t", "s/../../outside")]),
      ...fileFrames("d/t/victim.txt", DATA),
    ],
    [hostile.entries([symlinkEntry("etc", "/etc")]), ...fileFrames("etc/escape.txt", DATA)],
    // A size it never sends: the chunks it answers with are not the ones listed.
    [hostile.fileBegin(fileEntry("huge.bin", 16 * 1024 * MiB)), hostile.fileEnd(16 * 1024 * MiB, 0)],
  ];
  for (const script of scripts) await hostilePush(writeLink, script);

  assert.deepEqual(await outsideTheShare(base), before);
  const names = await readdir(share, { recursive: true });
  assert.ok(!names.some((name) => name.includes("escape") || name.includes("victim")), names.join(", "));

  // The host still takes an honest push, and serves its share.
  const src = join(base, "honest");
  await mkdir(src);
  await writeFile(join(src, "ok.txt"), "fine\n");
  const pushed = await runCli(["push", src, writeLink], env);
  assert.equal(pushed.code, 0, pushed.stderr);
  const listed = await runCli(["ls", host.link, "honest"], env);
  assert.match(listed.stdout, /ok\.txt/);
});

test("a pusher announcing more than --max-upload-bytes after declaring less is refused, leaving nothing", async (t) => {
  const { share, writeLink } = await uploadHost(t, "hostile-pusher-quota", ["--max-upload-bytes", "1M"]);
  const big = Buffer.alloc(4 * MiB, 7);
  // Every chunk it lists, it serves right: only the quota stands in the way.
  await hostilePush(writeLink, fileFrames("big.bin", big), { bytes: 10, files: 1 }, () => big);
  const names = await readdir(share, { recursive: true });
  assert.ok(!names.some((name) => name.includes("big.bin")), names.join(", "));
});

/** Frames of random types and bodies, from `seed`: whole frames, which the host must read and refuse. */
function randomFrames(seed: string, count: number): Buffer {
  const frames: Buffer[] = [];
  for (let at = 0; at < count; at++) {
    const noise = pseudoRandomBytes(600, `${seed}-${at}`);
    const body = noise.subarray(8, 8 + (noise.readUInt16LE(0) % 512));
    const frame = Buffer.alloc(FRAME_HEADER_SIZE + body.length);
    writeFrameHeader(frame, 0, noise.readUInt8(2), noise.readUInt32LE(4), body.length);
    body.copy(frame, FRAME_HEADER_SIZE);
    frames.push(frame);
  }
  return Buffer.concat(frames);
}

test("random bytes and random frames from a pusher end its upload, and the host goes on serving", async (t) => {
  const { base, host, writeLink, env } = await uploadHost(t, "hostile-pusher-fuzz");
  for (let round = 0; round < 8; round++) {
    const client = await TeleportClient.connect(writeLink, { upload: true, transport: "tcp" });
    const stream = await client.upload({ path: "in", source: "", bytes: 1, files: 1 });
    const closed = new Promise((resolve) => stream.stream.once("close", resolve));
    stream.stream.on("error", () => {});
    stream.stream.resume();
    const seed = `pusher-fuzz-${round}`;
    stream.stream.write(round % 2 === 0 ? pseudoRandomBytes(4096, seed) : randomFrames(seed, 32));
    await closed;
  }
  assert.equal(host.process.exitCode, null, "the host is still running");
  const listed = await runCli(["ls", host.link], env);
  assert.equal(listed.code, 0, listed.stderr);
  const src = join(base, "after");
  await mkdir(src);
  await writeFile(join(src, "a.txt"), "a\n");
  const pushed = await runCli(["push", src, writeLink, "--json"], env);
  assert.equal(pushed.code, 0, pushed.stderr);
  assert.equal((JSON.parse(pushed.stdout) as { files: number }).files, 1);
});
