/**
 * FolderListings over a fake host: a listing is trusted for its TTL (forever while changes are
 * followed), a new listing tells the kernel and the file readers what changed, and a change the
 * host reports while a LIST is under way is listed again after it (never lost to the older LIST).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { TeleportClient } from "../../src/client/client.js";
import { FolderListings, type KernelCache } from "../../src/mount/folder-listings.js";
import { InodeTable } from "../../src/mount/inode-table.js";
import { MountHost } from "../../src/mount/mount-host.js";
import { type Entry, EntryKind } from "../../src/wire/messages.js";

function file(path: string, mtimeMs = 1000): Entry {
  return { kind: EntryKind.FILE, path, size: 5, mode: 0o644, mtimeMs, linkTarget: "" };
}

const ROOT: Entry = { kind: EntryKind.DIRECTORY, path: "", size: 0, mode: 0o755, mtimeMs: 0, linkTarget: "" };

/** A host whose root folder lists as `entries`; a LIST waits while `gate` is set. */
class FakeShare {
  entries: Entry[] = [file("a")];
  lists = 0;
  gate: Promise<void> | undefined;

  client(): TeleportClient {
    const share = this;
    const client = {
      async *list(): AsyncGenerator<Entry> {
        share.lists++;
        const listed = [...share.entries]; // what the host had when the LIST reached it
        if (share.gate !== undefined) await share.gate;
        yield* listed;
      },
      close: async () => {},
    };
    return client as unknown as TeleportClient;
  }
}

class RecordedKernel implements KernelCache {
  readonly entries: string[] = [];
  readonly inodes: number[] = [];
  invalEntry(parent: number, name: string): void {
    this.entries.push(`${parent}/${name}`);
  }
  invalInode(ino: number): void {
    this.inodes.push(ino);
  }
}

async function setUp(share: FakeShare, now: { ms: number }) {
  const host = await MountHost.connect(async () => share.client());
  const table = new InodeTable(ROOT, [file("a")], { listedAt: now.ms });
  const forgotten: number[] = [];
  const listings = new FolderListings(table, host, {
    ttlMs: 1000,
    clock: () => now.ms,
    forget: (ino) => forgotten.push(ino),
  });
  const kernel = new RecordedKernel();
  listings.kernel = kernel;
  return { host, table, listings, kernel, forgotten };
}

test("a listing is trusted for its TTL, then listed again and every difference told", async () => {
  const share = new FakeShare();
  const now = { ms: 0 };
  const { host, table, listings, kernel, forgotten } = await setUp(share, now);
  const oldA = table.at("a")?.ino ?? 0;
  now.ms = 999;
  assert.equal(listings.stale(table.root), false);
  now.ms = 1000;
  assert.equal(listings.stale(table.root), true);
  share.entries = [file("a", 2000), file("b")];
  await listings.list(table.root);
  assert.equal(share.lists, 1);
  assert.equal(listings.stale(table.root), false);
  assert.notEqual(table.at("a")?.ino, oldA);
  assert.deepEqual(forgotten, [oldA]);
  assert.deepEqual(kernel.entries.sort(), ["1/a", "1/b"]);
  assert.deepEqual(kernel.inodes.sort(), [1, oldA].sort());
  await host.close();
});

test("while changes are followed a listing never ages, and a reported change lists its folder", async () => {
  const share = new FakeShare();
  const now = { ms: 0 };
  const { host, table, listings } = await setUp(share, now);
  listings.watched = true;
  now.ms = 1e9;
  assert.equal(listings.stale(table.root), false);
  share.entries = [file("a"), file("new")];
  listings.changed(["new"]);
  await listings.list(table.root); // joins the listing the change started
  assert.ok(table.at("new"), "listed on the host's word");
  await host.close();
});

test("a change reported while a LIST is under way is listed again after it", async () => {
  const share = new FakeShare();
  const now = { ms: 0 };
  const { host, table, listings } = await setUp(share, now);
  let release = () => {};
  share.gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  now.ms = 5000;
  const first = listings.list(table.root); // reaches the host before the change
  await new Promise((resolve) => setImmediate(resolve));
  share.entries = [file("a"), file("late")];
  listings.changed(["late"]);
  share.gate = undefined;
  release();
  await first;
  // The change's own LIST follows by itself; nothing here asks for one.
  for (let turn = 0; turn < 1000 && table.at("late") === undefined; turn++)
    await new Promise((resolve) => setImmediate(resolve));
  assert.ok(table.at("late"), "the older LIST did not hide the change");
  assert.equal(share.lists, 2);
  await host.close();
});
