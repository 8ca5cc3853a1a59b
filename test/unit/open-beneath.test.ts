/** Opening beneath a folder's descriptor, each way: openat2 (the addon), /proc/self/fd, path. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ErrorCode, TeleportError } from "../../src/errors.js";
import { nativeBeneath } from "../../src/platform/native.js";
import { BeneathOpener, type FolderHandle } from "../../src/platform/open-beneath.js";
import { tempDir } from "../helpers/context.js";

const WAYS = [
  { name: "openat2", opener: () => new BeneathOpener(nativeBeneath), skip: nativeBeneath === undefined },
  { name: "proc", opener: () => new BeneathOpener(undefined, true), skip: false },
  { name: "path", opener: () => new BeneathOpener(undefined, false), skip: false },
];

function firstBytes(fd: number, length: number): string {
  const buffer = Buffer.alloc(length);
  const read = readSync(fd, buffer, 0, length, 0);
  closeSync(fd);
  return buffer.subarray(0, read).toString();
}

function refusedAsEscape(err: unknown): boolean {
  assert.ok(err instanceof TeleportError, String(err));
  assert.equal(err.code, ErrorCode.PATH_ESCAPE, err.message);
  return true;
}

for (const way of WAYS) {
  test(`${way.name}: opens files beneath the folder and refuses symlinks out of it`, {
    skip: way.skip,
  }, async (t) => {
    const base = await tempDir(t, `beneath-${way.name}`);
    const root = join(base, "root");
    mkdirSync(join(root, "sub"), { recursive: true });
    mkdirSync(join(base, "outside"));
    writeFileSync(join(root, "sub", "a"), "inside");
    writeFileSync(join(base, "outside", "a"), "outside");
    symlinkSync("../outside", join(root, "out"));
    symlinkSync("sub", join(root, "in"));
    const opener = way.opener();
    assert.equal(opener.way, way.name);
    const folder: FolderHandle = { fd: openSync(root, opener.folderFlags), path: root };
    t.after(() => closeSync(folder.fd));
    const within = { within: root };

    assert.equal(firstBytes(opener.open(folder, "sub/a", constants.O_RDONLY, within), 16), "inside");
    assert.throws(() => opener.open(folder, "out/a", constants.O_RDONLY, within), refusedAsEscape);
    assert.throws(
      () => opener.open(folder, "out/a", constants.O_RDONLY, { ...within, followInside: true }),
      refusedAsEscape,
    );
    assert.throws(() => opener.open(folder, "out", constants.O_RDONLY, within), refusedAsEscape);
    const throughInside = opener.open(folder, "in/a", constants.O_RDONLY, { ...within, followInside: true });
    assert.equal(firstBytes(throughInside, 16), "inside", "a symlink inside is followed where allowed");
  });

  test(`${way.name}: statName describes one name beneath the folder as fstat does, never following it`, {
    skip: way.skip,
  }, async (t) => {
    const root = await tempDir(t, `beneath-stat-${way.name}`);
    mkdirSync(join(root, "sub"));
    writeFileSync(join(root, "sub", "a"), "inside");
    symlinkSync("sub/a", join(root, "link"));
    const opener = way.opener();
    const folder: FolderHandle = { fd: openSync(root, opener.folderFlags), path: root };
    t.after(() => closeSync(folder.fd));
    const sub: FolderHandle = {
      fd: opener.open(folder, "sub", opener.folderFlags, { within: root }),
      path: join(root, "sub"),
    };
    t.after(() => closeSync(sub.fd));

    const named = opener.statName(sub, "a");
    const fd = openSync(join(root, "sub", "a"), "r");
    const opened = fstatSync(fd);
    closeSync(fd);
    assert.ok(named !== undefined);
    const fields = ({ mode, dev, ino, size, mtimeMs }: typeof named) => ({ mode, dev, ino, size, mtimeMs });
    assert.deepEqual(fields(named), fields(opened), "the same fields, mtimeMs to the last bit");
    const described = opener.openDescribed(folder, "sub/a", constants.O_RDONLY, { within: root });
    assert.deepEqual(fields(described.stats), fields(opened), "openDescribed describes what it opened");
    assert.equal(described.stats.nlink, 1);
    assert.equal(firstBytes(described.fd, 16), "inside");
    assert.equal((opener.statName(folder, "link")?.mode ?? 0) & constants.S_IFMT, constants.S_IFLNK);
    assert.equal(opener.statName(folder, "missing"), undefined);
    for (const notOneName of ["sub/a", "..", ".", "", "a\0b"])
      assert.throws(() => opener.statName(folder, notOneName), TeleportError, notOneName);
  });

  test(`${way.name}: a FIFO opens without waiting for a writer`, { skip: way.skip }, async (t) => {
    const root = await tempDir(t, `beneath-fifo-${way.name}`);
    execFileSync("mkfifo", [join(root, "pipe")]);
    const opener = way.opener();
    const folder: FolderHandle = { fd: openSync(root, opener.folderFlags), path: root };
    t.after(() => closeSync(folder.fd));
    closeSync(opener.open(folder, "pipe", constants.O_RDONLY, { within: root }));
  });
}

for (const way of WAYS.filter(({ name }) => name !== "path")) {
  test(`${way.name}: a folder renamed and replaced by a symlink is still the folder its descriptor holds`, {
    skip: way.skip,
  }, async (t) => {
    const base = await tempDir(t, `beneath-swap-${way.name}`);
    const root = join(base, "root");
    mkdirSync(join(root, "d"), { recursive: true });
    mkdirSync(join(base, "victim"));
    writeFileSync(join(root, "d", "key"), "inside");
    writeFileSync(join(base, "victim", "key"), "victim");
    const opener = way.opener();
    const rootFolder: FolderHandle = { fd: openSync(root, opener.folderFlags), path: root };
    t.after(() => closeSync(rootFolder.fd));
    const d: FolderHandle = {
      fd: opener.open(rootFolder, "d", opener.folderFlags, { within: root }),
      path: join(root, "d"),
    };
    t.after(() => closeSync(d.fd));

    renameSync(join(root, "d"), join(root, "d-moved"));
    symlinkSync("../victim", join(root, "d"));

    assert.equal(firstBytes(opener.open(d, "key", constants.O_RDONLY, { within: root }), 16), "inside");
    const held = statSync(join(root, "d-moved", "key")).ino;
    assert.equal(
      opener.statName(d, "key")?.ino,
      held,
      "looked up in the folder held, not through the symlink",
    );
    assert.throws(
      () => opener.open(rootFolder, "d/key", constants.O_RDONLY, { within: root }),
      refusedAsEscape,
    );
  });
}
