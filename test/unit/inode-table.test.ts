/**
 * InodeTable: a path keeps its inode while its entry stays the same; a changed file gets a new
 * one, a removed path's inodes (with what was beneath) leave the table, and each difference is
 * named for the kernel. A listing cut short leaves its unfinished folders to be listed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InodeTable, ROOT_INO } from "../../src/mount/inode-table.js";
import { type Entry, EntryKind } from "../../src/wire/messages.js";

function file(path: string, size = 10, mtimeMs = 1000, mode = 0o644): Entry {
  return { kind: EntryKind.FILE, path, size, mode, mtimeMs, linkTarget: "" };
}

function folder(path: string, mtimeMs = 1000): Entry {
  return { kind: EntryKind.DIRECTORY, path, size: 0, mode: 0o755, mtimeMs, linkTarget: "" };
}

const ROOT = folder("");

test("a recursive listing makes every folder listed, the empty ones too", () => {
  const table = new InodeTable(ROOT, [folder("a"), file("a/x"), folder("a/empty"), file("top")], {
    listedAt: 5,
  });
  assert.equal(table.size, 5);
  assert.equal(table.root.ino, ROOT_INO);
  const a = table.at("a");
  assert.equal(a?.listedAt, 5);
  assert.equal(table.at("a/empty")?.listedAt, 5);
  assert.equal(table.lookup(a?.ino ?? 0, "x"), table.at("a/x"));
  assert.equal(table.at("top")?.listedAt, undefined, "a file has no listing");
});

test("unchanged paths keep their inode; a changed file gets a new one and the old one goes", () => {
  const table = new InodeTable(ROOT, [
    file("same"),
    file("edited"),
    file("mode"),
    folder("sub"),
    file("sub/f"),
  ]);
  const before = new Map(
    ["same", "edited", "mode", "sub", "sub/f"].map((path) => [path, table.at(path)?.ino]),
  );
  const changes = table.replaceChildren(
    table.root,
    [file("same"), file("edited", 10, 2000), file("mode", 10, 1000, 0o600), folder("sub"), file("new")],
    7,
  );
  assert.equal(table.at("same")?.ino, before.get("same"));
  assert.equal(table.at("mode")?.ino, before.get("mode"), "a mode change keeps the inode");
  assert.equal(table.at("mode")?.entry.mode, 0o600);
  assert.equal(table.at("sub/f")?.ino, before.get("sub/f"), "a folder's children are its own listing's");
  const edited = table.at("edited")?.ino ?? 0;
  assert.ok(edited > Math.max(...[...before.values()].map((ino) => ino ?? 0)), "a new number, never reused");
  assert.equal(table.get(before.get("edited") ?? 0), undefined);
  assert.equal(table.retired(before.get("edited") ?? 0)?.entry.mtimeMs, 1000, "kept for an fstat on it");
  assert.deepEqual(changes.dropped, [before.get("edited")]);
  assert.deepEqual(changes.names.map(({ parent, name }) => [parent, name]).sort(), [
    [ROOT_INO, "edited"],
    [ROOT_INO, "new"],
  ]);
  assert.deepEqual(
    [...changes.inodes].sort((x, y) => x - y),
    [ROOT_INO, before.get("edited"), before.get("mode")].sort((x = 0, y = 0) => x - y),
  );
  assert.equal(table.root.listedAt, 7);
});

test("a removed folder takes everything beneath it out of the table", () => {
  const table = new InodeTable(ROOT, [
    folder("gone"),
    folder("gone/deep"),
    file("gone/deep/f"),
    file("kept"),
  ]);
  const inos = ["gone", "gone/deep", "gone/deep/f"].map((path) => table.at(path)?.ino ?? 0);
  const changes = table.replaceChildren(table.root, [file("kept")], 9);
  assert.deepEqual([...changes.dropped].sort(), [...inos].sort());
  for (const ino of inos) assert.equal(table.get(ino), undefined);
  assert.equal(table.at("gone/deep/f"), undefined);
  assert.equal(table.size, 2);
});

test("a folder replaced by a file of the same name gets a new inode", () => {
  const table = new InodeTable(ROOT, [folder("x"), file("x/in")]);
  const old = table.at("x")?.ino;
  table.replaceChildren(table.root, [file("x")], 2);
  assert.notEqual(table.at("x")?.ino, old);
  assert.equal(table.at("x")?.children, undefined);
  assert.equal(table.at("x/in"), undefined);
});

test("a folder whose mtime moved is to be listed again", () => {
  const table = new InodeTable(ROOT, [folder("d", 1000), file("d/f")], { listedAt: 1 });
  table.replaceChildren(table.root, [folder("d", 2000)], 2);
  assert.equal(table.at("d")?.listedAt, Number.NEGATIVE_INFINITY);
  assert.ok(table.at("d/f"), "its children stay known until listed");
});

test("a listing cut short leaves the folders it did not finish to be listed", () => {
  const table = new InodeTable(ROOT, []);
  table.merge([folder("a"), folder("a/b"), file("a/b/1")], 3, table.root, new Set(["", "a", "a/b"]));
  assert.equal(table.root.listedAt, undefined);
  assert.equal(table.at("a/b")?.listedAt, undefined);
  assert.ok(table.at("a/b/1"));
});

test("an entry listed with its own folder is not taken as a child of itself", () => {
  const table = new InodeTable(ROOT, [folder("d")]);
  const d = table.at("d");
  assert.ok(d);
  table.replaceChildren(d, [folder("d"), file("d/f"), file("elsewhere/g")], 4);
  assert.deepEqual([...(d.children?.keys() ?? [])], ["f"]);
});

test("a folder's first listing names nothing for the kernel (it has seen nothing of it); a later one does", () => {
  const table = new InodeTable(ROOT, [], { listedAt: 1 });
  table.replaceChildren(table.root, [folder("a")], 1);
  const a = table.at("a");
  assert.ok(a);
  assert.equal(a.listedAt, undefined);
  const first = table.replaceChildren(a, [file("a/x"), file("a/y")], 2);
  assert.deepEqual(first.names, []);
  assert.deepEqual(first.inodes, []);
  const oldY = table.at("a/y")?.ino;
  const later = table.replaceChildren(a, [file("a/x"), file("a/y", 11), file("a/z")], 3);
  assert.deepEqual(later.names.map(({ name }) => name).sort(), ["y", "z"]);
  assert.ok(oldY !== undefined && later.inodes.includes(oldY) && later.inodes.includes(a.ino));
  assert.deepEqual(later.dropped, [oldY]);
});
