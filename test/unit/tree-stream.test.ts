/**
 * The recursive LIST streamed into the tree while the mount answers (TreeStream through
 * FolderListings), over a fake host walking depth first as Share.walk does: a folder the stream
 * is inside is answered once the stream leaves it (never from what it holds so far, never by a
 * LIST of its own); a host failing mid-stream leaves the folder it was inside to a LIST of its
 * own, which fails as EIO would and is tried again by the next ask; a stream cut at its bound
 * leaves the folders it was inside to be listed when visited; a folder asked for before the
 * stream starts waits for it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { TeleportClient } from "../../src/client/client.js";
import { ErrorCode, TeleportError } from "../../src/errors.js";
import { FolderListings } from "../../src/mount/folder-listings.js";
import { InodeTable, parentPath } from "../../src/mount/inode-table.js";
import { MountHost } from "../../src/mount/mount-host.js";
import { REACH_WAIT_MS } from "../../src/mount/tree-stream.js";
import { type Entry, EntryKind } from "../../src/wire/messages.js";

function file(path: string): Entry {
  return { kind: EntryKind.FILE, path, size: 5, mode: 0o644, mtimeMs: 1000, linkTarget: "" };
}

function folder(path: string): Entry {
  return { kind: EntryKind.DIRECTORY, path, size: 0, mode: 0o755, mtimeMs: 1000, linkTarget: "" };
}

/** The share's tree in the host's walk order: a folder's subtree right after its entry. */
const TREE: Entry[] = [
  folder(""),
  folder("a"),
  file("a/1"),
  folder("a/deep"),
  file("a/deep/x"),
  file("a/2"),
  folder("b"),
  file("b/3"),
  file("c"),
];

/** A host walking TREE; the recursive LIST stops at `gate` (after that many entries) until opened. */
class WalkingShare {
  /** Non-recursive LISTs asked, by path. */
  readonly lists: string[] = [];
  gateAt = Number.POSITIVE_INFINITY;
  failAt = Number.POSITIVE_INFINITY;
  failFolderLists = 0;
  #open: () => void = () => {};
  readonly #opened = new Promise<void>((resolve) => {
    this.#open = resolve;
  });
  /** Entries the recursive LIST has handed out. */
  streamed = 0;

  open(): void {
    this.#open();
  }

  client(): TeleportClient {
    const share = this;
    const client = {
      async *list(path: string, options: { recursive?: boolean } = {}): AsyncGenerator<Entry> {
        if (options.recursive !== true) {
          share.lists.push(path);
          if (share.failFolderLists > 0) {
            share.failFolderLists--;
            throw new TeleportError(ErrorCode.IO, "the host could not list it");
          }
          yield* TREE.filter((entry) => entry.path !== "" && parentPath(entry.path) === path);
          return;
        }
        for (const [at, entry] of TREE.entries()) {
          if (at === share.gateAt) await share.#opened;
          if (at === share.failAt) throw new TeleportError(ErrorCode.IO, "the host failed mid-listing");
          share.streamed++;
          yield entry;
        }
      },
      close: async () => {},
    };
    return client as unknown as TeleportClient;
  }
}

async function setUp(share: WalkingShare, eagerEntries?: number) {
  const client = share.client();
  const host = await MountHost.connect(async () => client);
  // As the mount starts: the root's own entries listed, its folders not yet.
  const table = new InodeTable(folder(""), [], { listedAt: 0 });
  table.replaceChildren(table.root, [folder("a"), folder("b"), file("c")], 0);
  const listings = new FolderListings(table, host, {
    ttlMs: 60_000,
    ...(eagerEntries === undefined ? {} : { eagerEntries }),
  });
  listings.expectResync();
  const resync = () => listings.resync(client, AbortSignal.timeout(10_000));
  return { host, table, listings, resync };
}

function namesIn(table: InodeTable, path: string): string[] {
  return [...(table.at(path)?.children?.keys() ?? [])];
}

async function untilStreamed(share: WalkingShare, count: number): Promise<void> {
  for (let turn = 0; turn < 1000 && share.streamed < count; turn++)
    await new Promise((resolve) => setImmediate(resolve));
  assert.equal(share.streamed, count);
}

test("a folder the stream is inside is answered once the stream leaves it, not before, with no LIST of its own", async () => {
  const share = new WalkingShare();
  share.gateAt = 5; // inside "a", after "a/deep/x"
  const { host, table, listings, resync } = await setUp(share);
  const streaming = resync();
  await untilStreamed(share, 5);
  const folderA = table.at("a");
  assert.ok(folderA);
  let answered = false;
  const asked = listings.list(folderA).then(() => {
    answered = true;
  });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(answered, false, "not answered from the part listed so far");
  assert.equal(listings.stale(folderA), true);
  share.open();
  await asked;
  assert.deepEqual(namesIn(table, "a"), ["1", "deep", "2"]);
  assert.deepEqual(namesIn(table, "a/deep"), ["x"]);
  await streaming;
  assert.deepEqual(namesIn(table, "b"), ["3"]);
  assert.deepEqual(share.lists, [], "everything came from the one recursive LIST");
  await host.close();
});

test("a host failing mid-stream: the folder it was inside is listed on its own, and a failed LIST is tried again by the next ask", async () => {
  const share = new WalkingShare();
  share.gateAt = 5;
  share.failAt = 5;
  share.failFolderLists = 1;
  const { host, table, listings, resync } = await setUp(share);
  const streaming = resync().catch((err: unknown) => err);
  await untilStreamed(share, 5);
  const folderA = table.at("a");
  assert.ok(folderA);
  const asked = listings.list(folderA);
  share.open();
  assert.ok((await streaming) instanceof TeleportError, "the stream failed");
  await assert.rejects(asked, /could not list/, "its own LIST failed too: the ask fails (EIO)");
  assert.equal(listings.stale(folderA), true);
  await listings.list(folderA);
  assert.deepEqual(namesIn(table, "a"), ["1", "deep", "2"]);
  assert.deepEqual(share.lists.slice(0, 2), ["a", "a"]);
  await host.close();
});

test("a stream cut at its bound leaves the folders it was inside to be listed when visited", async () => {
  const share = new WalkingShare();
  const { host, table, listings, resync } = await setUp(share, 4); // stops inside "a/deep"
  await resync();
  const folderA = table.at("a");
  assert.ok(folderA);
  assert.equal(listings.stale(folderA), true, "cut inside it: still to be listed");
  await listings.list(folderA);
  assert.deepEqual(namesIn(table, "a"), ["1", "deep", "2"]);
  assert.deepEqual(share.lists.slice(0, 1), ["a"]);
  await host.close();
});

test("a folder the stream has yet to reach is listed on its own once it does not come in time", async () => {
  const share = new WalkingShare();
  share.gateAt = 2; // inside "a": "b" is far off
  const { host, table, listings, resync } = await setUp(share);
  const streaming = resync();
  await untilStreamed(share, 2);
  const folderB = table.at("b");
  assert.ok(folderB);
  await listings.list(folderB);
  assert.deepEqual(namesIn(table, "b"), ["3"]);
  assert.deepEqual(share.lists, ["b"]);
  share.open();
  await streaming;
  assert.equal(table.at("b"), folderB, "the stream's later listing of it kept its inode");
  await host.close();
});

test("a walker asking before the stream starts waits for it rather than listing folders one by one", async () => {
  const share = new WalkingShare();
  const { host, table, listings, resync } = await setUp(share);
  const folderA = table.at("a");
  assert.ok(folderA);
  const asked = listings.list(folderA);
  // The mount's first stream starts once WATCH is live: later than a stream under way is waited for.
  await new Promise((resolve) => setTimeout(resolve, REACH_WAIT_MS * 3));
  await resync();
  await asked;
  assert.deepEqual(namesIn(table, "a"), ["1", "deep", "2"]);
  assert.deepEqual(share.lists, [], "no LIST of its own");
  await host.close();
});
