/**
 * A mount's reads against a real host, without the kernel: RemoteFiles over a real connection,
 * its fetchers counted. A sequential reader is served through the stream pool, a random one never
 * starts it; the first read in a folder lists and fetches its small files in one request each;
 * every byte is the host's. The last test mounts for real and checks the kernel's read-ahead was
 * raised (root, /dev/fuse and the FUSE addon; skipped elsewhere).
 */
import assert from "node:assert/strict";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { TeleportClient } from "../../src/client/client.js";
import { type ChunkFetcher, controlFetcher, routedFetcher } from "../../src/mount/chunk-fetcher.js";
import { ChunkSource } from "../../src/mount/chunk-source.js";
import { type Inode, InodeTable } from "../../src/mount/inode-table.js";
import { KERNEL_READ_AHEAD_KIB } from "../../src/mount/kernel-readahead.js";
import { MountHost } from "../../src/mount/mount-host.js";
import { POOL_FETCH_BYTES, PoolFetcher } from "../../src/mount/pool-fetcher.js";
import { RemoteFiles } from "../../src/mount/remote-files.js";
import type { Entry } from "../../src/wire/messages.js";
import { type HostProcess, startHost } from "../helpers/cli.js";
import { onCleanup, tempDir } from "../helpers/context.js";
import { cannotMount, startMount } from "../helpers/mount.js";
import { pseudoRandomBytes } from "../helpers/tree.js";

const BIG = "big.bin";
const BIG_BYTES = 24 << 20;
const SMALL_FOLDER = "src";
const SMALL_FILES = 40;
/** A tree walked as `grep -r` walks it: depth first, in readdir order (the host lists names sorted). */
const TREE_FOLDERS = ["tree/a", "tree/a/sub", "tree/b", "tree/c"];

interface Counted {
  calls: number;
  bytes: number;
}

interface Reading {
  share: string;
  files: RemoteFiles;
  table: InodeTable;
  pool: PoolFetcher;
  control: Counted;
  pooled: Counted;
  manifests: { paths: string[] };
  /** GET_CHUNKS requests sent on the control connection. */
  getChunks: { requests: number };
}

async function makeShare(share: string): Promise<void> {
  await mkdir(join(share, SMALL_FOLDER, "deeper"), { recursive: true });
  await writeFile(join(share, BIG), pseudoRandomBytes(BIG_BYTES, "readahead-big"));
  for (let i = 0; i < SMALL_FILES; i++)
    await writeFile(
      join(share, SMALL_FOLDER, `file-${i}.c`),
      pseudoRandomBytes(1000 + i * 300, `small-${i}`),
    );
  await writeFile(join(share, SMALL_FOLDER, "deeper", "not-beside.c"), "a file of a subfolder\n");
  for (const folder of TREE_FOLDERS) {
    await mkdir(join(share, folder), { recursive: true });
    for (let i = 0; i < 5; i++) await writeFile(join(share, folder, `f${i}.h`), `${folder} ${i}\n`);
  }
}

async function hostShare(t: TestContext): Promise<{ share: string; host: HostProcess }> {
  const base = await tempDir(t, "mount-readahead");
  const share = join(base, "share");
  await makeShare(share);
  const host = await startHost(share, { home: join(base, "host-home") });
  onCleanup(t, () => host.stop());
  return { share, host };
}

function counting(fetcher: ChunkFetcher, counted: Counted): ChunkFetcher {
  return (path, refs, onChunk, signal) => {
    counted.calls++;
    for (const ref of refs) counted.bytes += ref.size;
    return fetcher(path, refs, onChunk, signal);
  };
}

/** The mount's read path over a connection to `host`, as `teleport mount` builds it, counted. */
async function reading(t: TestContext, share: string, host: HostProcess): Promise<Reading> {
  const client = await TeleportClient.connect(host.link);
  const manifests = { paths: [] as string[] };
  const getChunks = { requests: 0 };
  const counted = new Proxy(client, {
    get(target, key) {
      if (key === "fetchChunks") getChunks.requests++;
      if (key === "manifest")
        return (
          path: string,
          ...rest: Parameters<TeleportClient["manifest"]> extends [string, ...infer R] ? R : never
        ) => {
          manifests.paths.push(path);
          return target.manifest(path, ...rest);
        };
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const mountHost = new MountHost(counted);
  const pool = new PoolFetcher(mountHost);
  onCleanup(t, async () => {
    await pool.close();
    await mountHost.close();
  });
  const entries: Entry[] = [];
  for await (const entry of client.list("", { recursive: true })) entries.push(entry);
  const table = new InodeTable(await client.stat(""), entries);
  const control: Counted = { calls: 0, bytes: 0 };
  const pooled: Counted = { calls: 0, bytes: 0 };
  const fetcher = routedFetcher(
    counting(controlFetcher(mountHost), control),
    counting(pool.fetch, pooled),
    POOL_FETCH_BYTES,
  );
  const files = new RemoteFiles(mountHost, new ChunkSource(fetcher), {
    pathWindowBytes: () => pool.windowBytes,
    folderOf: (node) => table.get(node.parentIno),
  });
  return { share, files, table, pool, control, pooled, manifests, getChunks };
}

function nodeAt(table: InodeTable, path: string): Inode {
  let node = table.get(1);
  for (const name of path.split("/")) node = node === undefined ? undefined : table.lookup(node.ino, name);
  assert.ok(node !== undefined, `${path} is in the table`);
  return node;
}

const signal = () => AbortSignal.timeout(60_000);

test("a sequential reader is read ahead through the stream pool, every byte the host's", async (t) => {
  const { share, host } = await hostShare(t);
  const { files, table, pool, control, pooled } = await reading(t, share, host);
  const expected = await readFile(join(share, BIG));
  const node = nodeAt(table, BIG);
  const piece = 128 << 10;
  for (let offset = 0; offset < BIG_BYTES; offset += piece) {
    const got = await files.read(node, offset, piece, signal());
    assert.ok(Buffer.from(got).equals(expected.subarray(offset, offset + piece)), `bytes at ${offset}`);
  }
  assert.equal(pool.started, true, "the sequential reader started the pool");
  assert.ok(pooled.bytes >= BIG_BYTES * 0.75, `most bytes came through the pool (${pooled.bytes})`);
  assert.ok(pooled.calls < 40, `in a few large batches (${pooled.calls})`);
  assert.ok(control.bytes <= BIG_BYTES * 0.25, `little through the control connection (${control.bytes})`);
});

test("random 4 KiB reads never start the pool or fetch ahead", async (t) => {
  const { share, host } = await hostShare(t);
  const { files, table, pool, control, pooled } = await reading(t, share, host);
  const expected = await readFile(join(share, BIG));
  const node = nodeAt(table, BIG);
  const offsets = pseudoRandomBytes(4 * 200, "random-offsets");
  for (let i = 0; i < 200; i++) {
    const offset = (offsets.readUInt32LE(i * 4) % (BIG_BYTES / 4096)) * 4096;
    const got = await files.read(node, offset, 4096, signal());
    assert.ok(Buffer.from(got).equals(expected.subarray(offset, offset + 4096)), `bytes at ${offset}`);
  }
  assert.equal(pool.started, false);
  assert.equal(pooled.calls, 0);
  assert.ok(control.bytes <= 200 * (256 << 10), "only the chunks read were fetched");
});

test("the first read in a folder lists and fetches its small files in one request each", async (t) => {
  const { share, host } = await hostShare(t);
  const { files, table, manifests, getChunks } = await reading(t, share, host);
  for (let i = 0; i < SMALL_FILES; i++) {
    const path = `${SMALL_FOLDER}/file-${i}.c`;
    const node = nodeAt(table, path);
    const got = await files.read(node, 0, node.entry.size, signal());
    assert.ok(Buffer.from(got).equals(await readFile(join(share, path))), path);
  }
  assert.deepEqual(manifests.paths, [SMALL_FOLDER], "one manifest: the folder's");
  assert.ok(
    getChunks.requests <= 3,
    `chunks of ${SMALL_FILES} files in a request or two (${getChunks.requests})`,
  );

  const deeper = nodeAt(table, `${SMALL_FOLDER}/deeper/not-beside.c`);
  const got = await files.read(deeper, 0, deeper.entry.size, signal());
  assert.equal(Buffer.from(got).toString(), "a file of a subfolder\n");
  assert.deepEqual(manifests.paths.slice(1), [`${SMALL_FOLDER}/deeper/not-beside.c`], "a lone file: its own");
});

test("a reader walking a tree has the next folders of the walk listed ahead of it", async (t) => {
  const { share, host } = await hostShare(t);
  const { files, table, manifests } = await reading(t, share, host);
  const listedBeforeRead: string[] = [];
  for (const folder of TREE_FOLDERS) {
    if (manifests.paths.includes(folder)) listedBeforeRead.push(folder);
    for (let i = 0; i < 5; i++) {
      const path = `${folder}/f${i}.h`;
      const node = nodeAt(table, path);
      const got = await files.read(node, 0, node.entry.size, signal());
      assert.equal(Buffer.from(got).toString(), `${folder} ${i}\n`, path);
    }
  }
  // Reads in two folders make a tree walk: reaching tree/b lists tree/c, the next folder of the
  // walk, before it is read. Each folder is listed once, never file by file.
  assert.deepEqual(listedBeforeRead, ["tree/c"]);
  assert.deepEqual([...manifests.paths].sort(), [...TREE_FOLDERS].sort());
});

test("a mount raises the kernel's read-ahead, and a sequential read through it is the host's", {
  skip: cannotMount(),
}, async (t) => {
  const { share, host } = await hostShare(t);
  const base = await tempDir(t, "mount-readahead-kernel");
  const mountpoint = join(base, "mnt");
  await mkdir(mountpoint);
  const mount = await startMount(t, host.link, mountpoint, { TELEPORT_HOME: join(base, "home") });
  const { dev } = await stat(mountpoint);
  const minor = (dev & 0xff) | ((dev >>> 12) & 0xfff00);
  const readAhead = await readFile(`/sys/class/bdi/0:${minor}/read_ahead_kb`, "utf8");
  assert.equal(Number(readAhead.trim()), KERNEL_READ_AHEAD_KIB);
  assert.ok((await readFile(join(mountpoint, BIG))).equals(await readFile(join(share, BIG))));
  mount.process.kill("SIGTERM");
  assert.equal((await mount.result).code, 0);
});
