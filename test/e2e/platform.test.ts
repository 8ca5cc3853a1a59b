/**
 * The platform layer through the CLI: the host sets the congestion control it is asked for on
 * its connections, or says once that it cannot and serves anyway; large files are preallocated
 * at the destination and come out identical. Runs with the native addon where it is built and,
 * under TELEPORT_NATIVE=0, on the portable path (npm test runs this file both ways).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { link, mkdir, open, readdir, readFile, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { TeleportClient } from "../../src/client/client.js";
import { DataStreamFactory } from "../../src/client/data-streams.js";
import type { HostConnection } from "../../src/client/host-connection.js";
import type { PullSummary } from "../../src/client/pull.js";
import { ErrorCode, type TeleportError } from "../../src/errors.js";
import { Host } from "../../src/host/host.js";
import { platformIo } from "../../src/platform/io.js";
import type { ShareLink } from "../../src/transport/link.js";
import { type ChunkRequest, MessageType, statRequestCodec } from "../../src/wire/messages.js";
import { runCli, startHost } from "../helpers/cli.js";
import { onCleanup, tempDir } from "../helpers/context.js";
import { compareTrees, MiB, makeTree, pseudoRandomBytes } from "../helpers/tree.js";

type TestContext = Parameters<typeof tempDir>[0];

/**
 * `teleport host` of `share` (with `args`), and `pull(dest, ...options)`: a `--json` pull from
 * it into `dest` that must exit 0, giving its summary and what it said on stderr.
 */
async function serve(t: TestContext, base: string, share: string, args: string[] = []) {
  const host = await startHost(share, { home: join(base, "host-home"), args });
  onCleanup(t, () => host.stop());
  const env = { TELEPORT_HOME: join(base, "client-home") };
  const pull = async (dest: string, ...options: string[]) => {
    const result = await runCli(["pull", host.link, dest, "--json", ...options], env);
    assert.equal(result.code, 0, result.stderr);
    return { summary: JSON.parse(result.stdout) as PullSummary, stderr: result.stderr };
  };
  return { host, pull };
}

/** A host of the standard test tree, started with `args`. */
async function hostWith(t: TestContext, args: string[]) {
  const base = await tempDir(t, "platform");
  const share = join(base, "share");
  const info = await makeTree(share);
  return { base, share, info, ...(await serve(t, base, share, args)) };
}

test("host --congestion reno: set on the host's connections, the pull identical", async (t) => {
  const { base, share, info, host, pull } = await hostWith(t, ["--congestion", "reno"]);
  const { summary } = await pull(join(base, "dest"));
  assert.ok(summary.bytes > 0);
  await compareTrees(share, join(base, "dest"), { ignore: info.outsideLinks });
  const said = host.stderr();
  if (platformIo.kind === "native") assert.doesNotMatch(said, /congestion control/);
  else assert.match(said, /cannot set TCP congestion control reno without the native addon/);
});

test("host --congestion the kernel lacks: said once, and the host serves with the system's", async (t) => {
  const { base, share, info, host, pull } = await hostWith(t, ["--congestion", "no_such_cc"]);
  await pull(join(base, "dest"), "--streams", "4");
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

/** A file of `size` bytes with random data at `ranges` and holes elsewhere; returns its bytes. */
async function writeSparse(path: string, size: number, ranges: [number, number][]): Promise<Buffer> {
  const content = Buffer.alloc(size);
  const handle = await open(path, "w");
  try {
    for (const [start, end] of ranges) {
      const data = pseudoRandomBytes(end - start, `sparse ${start}`);
      data.copy(content, start);
      await handle.write(data, 0, data.length, start);
    }
    await handle.truncate(size);
  } finally {
    await handle.close();
  }
  return content;
}

test("a sparse file: holes never cross the network and stay holes at the destination", async (t) => {
  const base = await tempDir(t, "sparse");
  const share = join(base, "share");
  await mkdir(share);
  const size = 256 * MiB;
  const ranges: [number, number][] = [
    [8 * MiB, 9 * MiB],
    [100 * MiB, 100 * MiB + 300_000],
  ];
  const content = await writeSparse(join(share, "disk.img"), size, ranges);
  await writeSparse(join(share, "empty.img"), 64 * MiB, []);
  const { pull } = await serve(t, base, share);
  const dest = join(base, "dest");
  const { summary } = await pull(dest);
  assert.ok((await readFile(join(dest, "disk.img"))).equals(content), "same bytes, holes read as zeros");
  assert.equal((await stat(join(dest, "empty.img"))).size, 64 * MiB);
  const data = MiB + 300_000;
  if (platformIo.kind === "portable") {
    assert.equal(summary.bytesInHoles, 0, "without SEEK_HOLE every byte is data");
    return;
  }
  // The file system rounds data to its blocks: a few KiB of zeros around the data may be sent.
  const slack = 64 * 1024;
  const holes = size + 64 * MiB - data;
  assert.ok(summary.bytesInHoles <= holes && summary.bytesInHoles > holes - slack, `${summary.bytesInHoles}`);
  assert.ok(summary.bytesFromNetwork <= data + slack, `${summary.bytesFromNetwork} bytes fetched`);
  const allocated = (await stat(join(dest, "disk.img"))).blocks * 512;
  assert.ok(allocated < 4 * MiB, `${allocated} bytes allocated at the destination: sparse`);
  assert.ok((await stat(join(dest, "empty.img"))).blocks * 512 < MiB);

  // Pulled again: recognised as unchanged (the same chunk list, holes included), nothing fetched.
  assert.equal((await pull(dest)).summary.bytesFromNetwork, 0);
});

test("hard links within the pulled tree are pulled once and linked again", async (t) => {
  const base = await tempDir(t, "hardlinks");
  const share = join(base, "share");
  await mkdir(join(share, "sub"), { recursive: true });
  await writeFile(join(share, "a.bin"), pseudoRandomBytes(3 * MiB, "linked"));
  await link(join(share, "a.bin"), join(share, "b.bin"));
  await link(join(share, "a.bin"), join(share, "sub", "c.bin"));
  await writeFile(join(share, "small.txt"), "one file, two names\n");
  await link(join(share, "small.txt"), join(share, "sub", "small-again.txt"));
  const { pull } = await serve(t, base, share);

  const dest = join(base, "dest");
  const { summary } = await pull(dest);
  assert.equal(summary.hardLinks, 3);
  assert.equal(summary.files, 2, "each file's bytes pulled once");
  await compareTrees(share, dest);
  const inode = async (...path: string[]) => (await stat(join(dest, ...path))).ino;
  assert.equal(await inode("b.bin"), await inode("a.bin"));
  assert.equal(await inode("sub", "c.bin"), await inode("a.bin"));
  assert.equal(await inode("sub", "small-again.txt"), await inode("small.txt"));
  assert.equal((await stat(join(dest, "a.bin"))).nlink, 3);

  // Pulled again over itself: still linked, nothing fetched.
  assert.equal((await pull(dest)).summary.bytesFromNetwork, 0);
  assert.equal((await stat(join(dest, "a.bin"))).nlink, 3);

  // A folder pulled alone holds the first of the names it sees as a file.
  const part = join(base, "part");
  await pull(part, "--path", "sub");
  await compareTrees(join(share, "sub"), join(part, "sub"));
  assert.equal((await stat(join(part, "sub", "c.bin"))).nlink, 1);
});

test("pull --xattrs: files' user.* attributes as on the host, kept in step on re-pulls", async (t) => {
  const base = await tempDir(t, "xattrs");
  const share = join(base, "share");
  await mkdir(share);
  await writeFile(join(share, "tagged.bin"), pseudoRandomBytes(2 * MiB, "tagged"));
  await writeFile(join(share, "small.txt"), "tagged too\n");
  await writeFile(join(share, "plain.txt"), "no attributes\n");
  const attrs = (name: string, value: string) => ({ name, value: Buffer.from(value) });
  const tagged = [attrs("user.origin", "teleport test"), attrs("user.rating", "5")];
  const canTag =
    platformIo.writeXattrs(join(share, "tagged.bin"), tagged) &&
    platformIo.writeXattrs(join(share, "small.txt"), [attrs("user.kind", "note")]);
  const { pull } = await serve(t, base, share);
  const dest = join(base, "dest");
  const { summary, stderr } = await pull(dest, "--xattrs");
  await compareTrees(share, dest);
  if (!canTag) {
    // The portable path, or a file system without user attributes: said, and pulled without.
    assert.match(stderr, /pulling without extended attributes/);
    return;
  }
  const read = (name: string) => platformIo.readXattrs(join(dest, name))?.map((x) => `${x.name}=${x.value}`);
  assert.deepEqual(read("tagged.bin"), ["user.origin=teleport test", "user.rating=5"]);
  assert.deepEqual(read("small.txt"), ["user.kind=note"]);
  assert.deepEqual(read("plain.txt"), []);
  assert.equal(summary.filesWithXattrs, 2);

  // Only an attribute changes on the host: the re-pull fetches nothing and sets it.
  platformIo.writeXattrs(join(share, "tagged.bin"), [attrs("user.rating", "4")]);
  assert.equal((await pull(dest, "--xattrs")).summary.bytesFromNetwork, 0);
  assert.deepEqual(read("tagged.bin"), ["user.rating=4"]);

  // Without --xattrs none are asked for or written.
  const bare = join(base, "bare");
  await pull(bare);
  assert.deepEqual(platformIo.readXattrs(join(bare, "tagged.bin")), []);
});

test("pull --no-encryption: plaintext data streams where the host allows them, the same bytes", async (t) => {
  const base = await tempDir(t, "plaintext");
  const share = join(base, "share");
  const info = await makeTree(share);
  // Large enough for many sends of many chunks from one file, beside the tree's small files.
  await writeFile(join(share, "large.bin"), pseudoRandomBytes(12 * MiB + 5, "plaintext large"));
  const { host, pull } = await serve(t, base, share, ["--allow-no-encryption"]);
  assert.match(host.stderr(), /warning: clients may pull without encryption/);
  const dest = join(base, "dest");
  const { summary, stderr } = await pull(dest, "--no-encryption", "--streams", "3");
  assert.equal(summary.encrypted, false);
  assert.ok(summary.bytesFromNetwork > 12 * MiB);
  assert.match(stderr, /warning: --no-encryption/);
  await compareTrees(share, dest, { ignore: info.outsideLinks });
  // The same host still serves pulls that keep encryption.
  const { summary: encrypted } = await pull(join(base, "dest-tls"));
  assert.equal(encrypted.encrypted, true);
  await compareTrees(share, join(base, "dest-tls"), { ignore: info.outsideLinks });
});

test("pull --no-encryption from a host that does not allow it: ENCRYPTION_REQUIRED, nothing pulled", async (t) => {
  const base = await tempDir(t, "plaintext-refused");
  const share = join(base, "share");
  await makeTree(share);
  const host = await startHost(share, { home: join(base, "host-home") });
  onCleanup(t, () => host.stop());
  const dest = join(base, "dest");
  const result = await runCli(["pull", host.link, dest, "--no-encryption"], {
    TELEPORT_HOME: join(base, "client-home"),
  });
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /TELEPORT_ERR_ENCRYPTION_REQUIRED: the host does not take unencrypted streams/);
  assert.match(result.stderr, /--allow-no-encryption/);
  assert.deepEqual(await readdir(dest).catch(() => []), []);

  const quic = await runCli(["pull", host.link, dest, "--no-encryption", "--transport", "quic"], {
    TELEPORT_HOME: join(base, "client-home"),
  });
  assert.equal(quic.code, 2, quic.stderr);
  assert.match(quic.stderr, /QUIC is always encrypted/);
});

/** A data stream over plaintext TCP to the host of `link`, as a pull with --no-encryption opens. */
function plaintextStream(shareLink: ShareLink): Promise<HostConnection> {
  const spec = { link: shareLink, clientId: randomBytes(16), transport: "tcp" as const, encrypted: false };
  const streams = new DataStreamFactory(spec);
  return streams.open("tcp");
}

test("a plaintext stream: chunks only, the link's secret still required, refused by a host that does not allow it", async (t) => {
  const base = await tempDir(t, "plaintext-stream");
  await writeFile(join(base, "file"), "plaintext");
  const start = async (allowPlaintext: boolean) => {
    const host = await Host.start({
      root: base,
      home: join(base, `home-${allowPlaintext}`),
      bind: "127.0.0.1",
      allowPlaintext,
      transports: ["tcp"],
    });
    onCleanup(t, () => host.close());
    return host;
  };
  const open = await start(true);
  const client = await plaintextStream(open.link);
  onCleanup(t, () => client.close());
  const statOverPlaintext = async () => {
    for await (const _ of client.channel.stream(MessageType.STAT, statRequestCodec, { path: "file" }));
  };
  await assert.rejects(statOverPlaintext(), (err: TeleportError) => {
    assert.equal(err.code, ErrorCode.PROTOCOL);
    assert.match(err.message, /only chunks are served over an unencrypted stream/);
    return true;
  });
  await assert.rejects(plaintextStream({ ...open.link, secret: Buffer.alloc(32, 1) }), {
    code: ErrorCode.AUTH,
  });
  const closed = await start(false);
  await assert.rejects(plaintextStream(closed.link), (err: TeleportError) => {
    assert.equal(err.code, ErrorCode.CONNECTION);
    assert.match(err.message, /does it allow --no-encryption/);
    return true;
  });
});

test("a plaintext stream whose file got shorter since it was listed: FILE_CHANGED, and the stream goes on", async (t) => {
  const base = await tempDir(t, "plaintext-changed");
  const share = join(base, "share");
  await mkdir(share);
  const path = join(share, "big.bin");
  await writeFile(path, pseudoRandomBytes(3 * MiB, "plaintext changed"));
  const host = await Host.start({
    root: share,
    home: join(base, "home"),
    bind: "127.0.0.1",
    allowPlaintext: true,
    transports: ["tcp"],
  });
  onCleanup(t, () => host.close());
  const control = await TeleportClient.connect(host.link, { plaintext: true });
  onCleanup(t, () => control.close());
  const chunks: ChunkRequest[] = [];
  for await (const event of control.manifest("big.bin")) {
    if (event.kind === "chunks") for (const chunk of event.chunks) chunks.push({ ...chunk, path: "big.bin" });
  }
  const data = await control.dataStreams({ encrypted: false }).open("tcp");
  onCleanup(t, () => data.close());
  await truncate(path, MiB);
  await assert.rejects(
    data.fetchChunks(chunks, () => {}),
    { code: ErrorCode.FILE_CHANGED },
  );
  const first = chunks[0] as ChunkRequest;
  let received: Buffer | undefined;
  await data.fetchChunks([first], (_request, bytes) => {
    received = Buffer.from(bytes);
  });
  assert.equal(received?.length, first.size, "the same stream serves what is still there");
});
