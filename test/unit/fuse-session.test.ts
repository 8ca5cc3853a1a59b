/**
 * The FUSE binding over a tiny in-memory tree: mounted, read back through the kernel with async
 * fs calls (the dispatcher answers on this same thread), then unmounted. Skips where this machine
 * cannot mount (no /dev/fuse, no addon, not root).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { closeSync, openSync } from "node:fs";
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ErrorCode, isTeleportError } from "../../src/errors.js";
import { FuseSession, type HeldRange, openMountpoint, type ReadPiece } from "../../src/mount/fuse-session.js";
import { type Inode, InodeTable } from "../../src/mount/inode-table.js";
import { type Entry, EntryKind } from "../../src/wire/messages.js";
import { cannotMount } from "../helpers/mount.js";

const skip = cannotMount();
const MTIME = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

function entry(kind: EntryKind, path: string, size: number, mode: number, linkTarget = ""): Entry {
  return { kind, path, size, mode, mtimeMs: MTIME, linkTarget };
}

test("an in-memory tree mounts, reads back byte for byte, and unmounts", { skip }, async () => {
  const big = Buffer.alloc(3 << 20, 7).fill(9, 1_000_000);
  const contents = new Map<string, Buffer>([
    ["hello.txt", Buffer.from("hello, mount\n")],
    ["sub/big.bin", big],
  ]);
  const entries = [
    entry(EntryKind.FILE, "hello.txt", 13, 0o640),
    entry(EntryKind.DIRECTORY, "sub", 0, 0o750),
    entry(EntryKind.FILE, "sub/big.bin", 3 << 20, 0o644),
    entry(EntryKind.SYMLINK, "link", 0, 0o777, "hello.txt"),
    entry(EntryKind.FILE, "broken", 10, 0o644),
  ];
  const table = new InodeTable(entry(EntryKind.DIRECTORY, "", 0, 0o755), entries);
  const read = async (node: Inode, offset: number, length: number) => {
    const bytes = contents.get(node.entry.path);
    if (bytes === undefined) throw new Error("no such bytes");
    return bytes.subarray(offset, offset + length);
  };
  const mountpoint = await mkdtemp(join(tmpdir(), "teleport-fuse-"));
  const session = FuseSession.mount(mountpoint, table, read);
  try {
    assert.deepEqual((await readdir(mountpoint)).sort(), ["broken", "hello.txt", "link", "sub"]);
    assert.equal(await readFile(join(mountpoint, "hello.txt"), "utf8"), "hello, mount\n");
    assert.ok((await readFile(join(mountpoint, "sub/big.bin"))).equals(big));
    const info = await stat(join(mountpoint, "hello.txt"));
    assert.equal(info.mode & 0o7777, 0o640);
    assert.equal(info.size, 13);
    assert.equal(info.mtimeMs, MTIME);
    assert.equal((await stat(join(mountpoint, "sub"))).mode & 0o7777, 0o750);
    assert.equal(await readlink(join(mountpoint, "link")), "hello.txt");
    await assert.rejects(readFile(join(mountpoint, "broken")), { code: "EIO" });
    await assert.rejects(stat(join(mountpoint, "missing")), { code: "ENOENT" });
    await assert.rejects(writeFile(join(mountpoint, "new"), "x"), { code: "EROFS" });
  } finally {
    session.unmount();
    await session.closed;
    await rm(mountpoint, { recursive: true });
  }
});

test("reads answered from ranges of an open file; a range that moved away is read again", {
  skip,
}, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "teleport-fuse-ranges-"));
  const backing = join(dir, "backing");
  // The file's bytes lie in the backing file after a 4 KiB header, as a chunk lies in a pack.
  const file = Buffer.alloc(3 << 20);
  for (let i = 0; i < file.length; i += 4) file.writeUInt32LE(i, i);
  await writeFile(backing, Buffer.concat([Buffer.alloc(4096, 0xee), file]));
  const fd = openSync(backing, "r");
  const mountpoint = join(dir, "mnt");
  await mkdir(mountpoint);
  t.after(async () => {
    closeSync(fd);
    await rm(dir, { recursive: true });
  });
  const entries = [
    entry(EntryKind.FILE, "ranges.bin", file.length, 0o644),
    entry(EntryKind.FILE, "moving.bin", 4096, 0o644),
    entry(EntryKind.FILE, "gone.bin", 4096, 0o644),
  ];
  const table = new InodeTable(entry(EntryKind.DIRECTORY, "", 0, 0o755), entries);
  let moves = 0;
  const read = async (node: Inode, offset: number, length: number): Promise<ReadPiece[]> => {
    const range = (from: number, to: number): HeldRange => ({
      length: to - from,
      open: () => ({ fd, position: 4096 + from, length: to - from }),
    });
    if (node.entry.path === "ranges.bin") {
      // A memory piece between two ranges: the reply joins them in order.
      const middle = Math.min(offset + length, offset + 100);
      return [
        range(offset, offset + 1),
        file.subarray(offset + 1, middle),
        range(middle, offset + length),
      ].filter((piece) => piece.length > 0);
    }
    const gone = node.entry.path === "gone.bin";
    // moving.bin's range moves away once, then holds; gone.bin's never holds.
    return [
      { length, open: () => (gone || moves++ === 0 ? undefined : range(offset, offset + length).open()) },
    ];
  };
  const session = FuseSession.mount(mountpoint, table, read);
  try {
    assert.ok((await readFile(join(mountpoint, "ranges.bin"))).equals(file));
    assert.ok((await readFile(join(mountpoint, "moving.bin"))).equals(file.subarray(0, 4096)));
    assert.equal(moves, 2, "read again once the range had moved");
    await assert.rejects(readFile(join(mountpoint, "gone.bin")), { code: "EIO" });
  } finally {
    session.unmount();
    await session.closed;
  }
});

test("a mountpoint that cannot be opened as a folder is a usage error naming it", { skip }, async () => {
  const table = new InodeTable(entry(EntryKind.DIRECTORY, "", 0, 0o755), []);
  const missing = join(tmpdir(), `teleport-fuse-missing-${process.pid}`);
  assert.throws(
    () => FuseSession.mount(missing, table, async () => new Uint8Array(0)),
    (err: unknown) => isTeleportError(err, ErrorCode.USAGE) && err.detail.includes(missing),
  );
});

test("the mount lands on the folder opened and checked, not on a symlink swapped in at its path", {
  skip,
}, async () => {
  const table = new InodeTable(entry(EntryKind.DIRECTORY, "", 0, 0o755), [
    entry(EntryKind.FILE, "inside", 0, 0o644),
  ]);
  const base = await mkdtemp(join(tmpdir(), "teleport-fuse-swap-"));
  const checked = join(base, "mnt");
  const moved = join(base, "mnt-moved");
  const elsewhere = join(base, "elsewhere");
  await mkdir(checked);
  await mkdir(elsewhere);
  const fd = openMountpoint(checked);
  // Another user swaps the checked folder for a symlink between the check and the mount.
  await rename(checked, moved);
  await symlink(elsewhere, checked);
  const session = FuseSession.mount(checked, table, async () => new Uint8Array(0), { mountpointFd: fd });
  closeSync(fd);
  try {
    assert.deepEqual(await readdir(moved), ["inside"], "mounted on the folder that was checked");
    assert.deepEqual(await readdir(elsewhere), [], "not where the symlink points");
  } finally {
    session.unmount();
    await session.closed;
  }
  assert.deepEqual(await readdir(moved), [], "unmounted from where it landed");
  await rm(base, { recursive: true });
});

test("a read its source never answers is EIO once the request deadline passes", { skip }, async () => {
  const table = new InodeTable(entry(EntryKind.DIRECTORY, "", 0, 0o755), [
    entry(EntryKind.FILE, "stuck", 10, 0o644),
  ]);
  const never = () => new Promise<Uint8Array>(() => {});
  const mountpoint = await mkdtemp(join(tmpdir(), "teleport-fuse-"));
  const session = FuseSession.mount(mountpoint, table, never, { requestTimeoutMs: 300 });
  try {
    const started = performance.now();
    await assert.rejects(readFile(join(mountpoint, "stuck")), { code: "EIO" });
    assert.ok(performance.now() - started >= 250, "answered before its deadline");
  } finally {
    session.unmount();
    await session.closed;
    await rm(mountpoint, { recursive: true });
  }
});

test("a library's process exits by itself once its mount is unmounted (the addon holds nothing)", {
  skip,
}, async () => {
  const mountpoint = await mkdtemp(join(tmpdir(), "teleport-fuse-"));
  const here = new URL(".", import.meta.url).pathname;
  const script = `
    import { readFile } from "node:fs/promises";
    import { FuseSession } from ${JSON.stringify(join(here, "../../src/mount/fuse-session.js"))};
    import { InodeTable } from ${JSON.stringify(join(here, "../../src/mount/inode-table.js"))};
    const file = { kind: ${EntryKind.FILE}, path: "f", size: 3, mode: 0o644, mtimeMs: 0, linkTarget: "" };
    const root = { ...file, kind: ${EntryKind.DIRECTORY}, path: "", size: 0 };
    const session = FuseSession.mount(${JSON.stringify(mountpoint)}, new InodeTable(root, [file]), async () => Buffer.from("abc"));
    if ((await readFile(${JSON.stringify(join(mountpoint, "f"))}, "utf8")) !== "abc") throw new Error("bad bytes");
    session.unmount();
    await session.closed;
    console.log("closed");
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  try {
    const [code, signal] = await once(child, "exit");
    assert.equal(signal, null, `the process was still alive after its mount ended: ${output}`);
    assert.equal(code, 0, output);
    assert.match(output, /closed/);
  } finally {
    clearTimeout(timer);
    await rm(mountpoint, { recursive: true });
  }
});

test("a folder of thousands of names, long and short, readdirs whole, each name once", { skip }, async () => {
  const names = Array.from({ length: 3000 }, (_, i) => `${"n".repeat(1 + (i % 200))}-${i}`);
  const table = new InodeTable(
    entry(EntryKind.DIRECTORY, "", 0, 0o755),
    names.map((name) => entry(EntryKind.FILE, name, 1, 0o644)),
  );
  const mountpoint = await mkdtemp(join(tmpdir(), "teleport-fuse-many-"));
  const session = FuseSession.mount(mountpoint, table, async () => new Uint8Array(1));
  try {
    // Twice: the second read comes from the kernel's cache of the first, page by page.
    for (let pass = 0; pass < 2; pass++) {
      const listed = await readdir(mountpoint);
      assert.equal(listed.length, names.length);
      assert.deepEqual([...listed].sort(), [...names].sort());
    }
    assert.equal((await stat(join(mountpoint, names[2999] ?? ""))).size, 1, "its attributes came with it");
  } finally {
    session.unmount();
    await session.closed;
    await rm(mountpoint, { recursive: true });
  }
});
