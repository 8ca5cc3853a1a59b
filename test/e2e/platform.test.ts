/**
 * The platform layer through the CLI: the host sets the congestion control it is asked for on
 * its connections, or says once that it cannot and serves anyway; large files are preallocated
 * at the destination and come out identical. Runs with the native addon where it is built and,
 * under TELEPORT_NATIVE=0, on the portable path (npm test runs this file both ways).
 */
import assert from "node:assert/strict";
import { link, mkdir, open, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { PullSummary } from "../../src/client/pull.js";
import { platformIo } from "../../src/platform/io.js";
import { runCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/context.js";
import { hostWithCli, makeShare } from "../helpers/share.js";
import { compareTrees, MiB, makeTree, pseudoRandomBytes } from "../helpers/tree.js";
import { describeXattrs, readXattrsAt, writeXattrsAt, xattr } from "../helpers/xattrs.js";

type TestContext = Parameters<typeof tempDir>[0];

/**
 * `teleport host` of `share` (with `args`), and `pull(dest, ...options)`: a `--json` pull from
 * it into `dest` that must exit 0, giving its summary and what it said on stderr.
 */
async function serve(t: TestContext, base: string, share: string, args: string[] = []) {
  const host = await hostWithCli(t, { base, share, args });
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
  const { base, share } = await makeShare(t, "platform");
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
  const { base, share } = await makeShare(t, "sparse");
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
  const { base, share } = await makeShare(t, "hardlinks");
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
  const { base, share } = await makeShare(t, "xattrs");
  await writeFile(join(share, "tagged.bin"), pseudoRandomBytes(2 * MiB, "tagged"));
  await writeFile(join(share, "small.txt"), "tagged too\n");
  await writeFile(join(share, "plain.txt"), "no attributes\n");
  const attrs = xattr;
  const tagged = [attrs("user.origin", "teleport test"), attrs("user.rating", "5")];
  const canTag =
    writeXattrsAt(join(share, "tagged.bin"), tagged) &&
    writeXattrsAt(join(share, "small.txt"), [attrs("user.kind", "note")]);
  const { pull } = await serve(t, base, share);
  const dest = join(base, "dest");
  const { summary, stderr } = await pull(dest, "--xattrs");
  await compareTrees(share, dest);
  if (!canTag) {
    // The portable path, or a file system without user attributes: said, and pulled without.
    assert.match(stderr, /pulling without extended attributes/);
    return;
  }
  const read = (name: string) => describeXattrs(readXattrsAt(join(dest, name)));
  assert.deepEqual(read("tagged.bin"), ["user.origin=teleport test", "user.rating=5"]);
  assert.deepEqual(read("small.txt"), ["user.kind=note"]);
  assert.deepEqual(read("plain.txt"), []);
  assert.equal(summary.filesWithXattrs, 2);

  // Only an attribute changes on the host: the re-pull fetches nothing and sets it.
  writeXattrsAt(join(share, "tagged.bin"), [attrs("user.rating", "4")]);
  assert.equal((await pull(dest, "--xattrs")).summary.bytesFromNetwork, 0);
  assert.deepEqual(read("tagged.bin"), ["user.rating=4"]);

  // Without --xattrs none are asked for or written.
  const bare = join(base, "bare");
  await pull(bare);
  assert.deepEqual(readXattrsAt(join(bare, "tagged.bin")), []);
});

test("pull --no-encryption: plaintext data streams where the host allows them, the same bytes", async (t) => {
  const { base, share } = await makeShare(t, "plaintext");
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
  const { base, share } = await makeShare(t, "plaintext-refused");
  await makeTree(share);
  const host = await hostWithCli(t, { base, share });
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
