import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ChunkListHash } from "../../src/chunking/manifest.js";
import type { ManifestEvent } from "../../src/client/client.js";
import { ErrorCode } from "../../src/errors.js";
import {
  ChunkSequence,
  type FileReceiver,
  ManifestWalker,
  replayChunks,
  type WalkedFile,
} from "../../src/receive/manifest-walker.js";
import {
  type ChunkRef,
  type Entry,
  EntryKind,
  type FileBegin,
  type FileEnd,
  MAX_CHUNK_SIZE,
} from "../../src/wire/messages.js";

const DEST = "/dest";

function chunk(offset: number, size: number, tag = offset): ChunkRef {
  return { offset, size, hash: Buffer.alloc(32, tag % 251) };
}

/** The FILE_END a host would send for `chunks` of a file of `size` (holes between and after). */
function endOf(size: number, chunks: readonly ChunkRef[]): FileEnd {
  const list = new ChunkListHash();
  let at = 0;
  for (const c of chunks) {
    if (c.offset > at) list.addHole(at, c.offset - at);
    list.add(c.hash);
    at = c.offset + c.size;
  }
  if (at < size) list.addHole(at, size - at);
  return { size, chunkCount: chunks.length, fileHash: list.digest() };
}

function folder(path: string, mode = 0o755): Entry {
  return { kind: EntryKind.DIRECTORY, path, size: 0, mode, mtimeMs: 1000, linkTarget: "" };
}

function file(path: string, size: number): FileBegin {
  return { kind: EntryKind.FILE, path, size, mode: 0o644, mtimeMs: 1000, linkTarget: "" };
}

function hardLink(path: string, target: string): Entry {
  return { kind: EntryKind.HARDLINK, path, size: 0, mode: 0o644, mtimeMs: 1000, linkTarget: target };
}

async function* events(list: readonly ManifestEvent[]): AsyncGenerator<ManifestEvent> {
  for (const event of list) yield event;
}

/** What reached the fakes, in order, as short strings. */
class Log {
  readonly lines: string[] = [];
  add(line: string): void {
    this.lines.push(line);
  }
}

/** A receiver that logs; `complete` finishes files at once, as if every chunk were written. */
class FakeFiles {
  readonly opened: WalkedFile[] = [];
  constructor(readonly log: Log) {}

  receiver(name: string): FileReceiver {
    const log = this.log;
    return {
      onChunks: (chunks) => log.add(`frame ${name} ${chunks.length}`),
      onChunk: (c) => {
        log.add(`chunk ${name} ${c.offset}+${c.size}`);
        return undefined;
      },
      onHole: (start, end) => log.add(`hole ${name} ${start}-${end}`),
      onEnd: async () => log.add(`end ${name}`),
    };
  }

  async open(walked: WalkedFile): Promise<FileReceiver> {
    this.opened.push(walked);
    this.log.add(`open ${walked.entry.path} -> ${walked.finalPath}`);
    return this.receiver(walked.entry.path);
  }
}

function walker(remote = "", log = new Log()) {
  const files = new FakeFiles(log);
  const failures: string[] = [];
  const walk = new ManifestWalker({
    remote,
    dest: DEST,
    hardLinks: true,
    tree: {
      makeDirectory: (path) => {
        log.add(`mkdir ${path}`);
        return true;
      },
      makeSymlink: (target, path) => log.add(`symlink ${path} -> ${target}`),
      link: (existing, path) => log.add(`link ${path} -> ${existing}`),
      setFolderMetadata: (path, entry) => log.add(`metadata ${path} ${entry.mode.toString(8)}`),
    },
    files,
    tally: {
      directory: () => {},
      symlink: () => {},
      hardLink: () => {},
      failed: (path, code) => failures.push(`${path} ${code}`),
      skipped: (path, reason) => failures.push(`${path} skipped: ${reason}`),
    },
  });
  return { walk, files, log, failures };
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: { code?: string; message: string }) => {
    assert.equal(err.code, code, err.message);
    if (message !== undefined) assert.match(err.message, message);
    return true;
  });
}

describe("ChunkSequence", () => {
  it("accepts chunks in order with holes between, and a FILE_END that matches them", () => {
    const chunks = [chunk(0, 10), chunk(4 * 1024 * 1024, 10)];
    const sequence = new ChunkSequence("f", 8 * 1024 * 1024);
    sequence.accept(chunks);
    assert.equal(sequence.described, 4 * 1024 * 1024 + 10);
    assert.equal(
      sequence.end(endOf(8 * 1024 * 1024, chunks)),
      4 * 1024 * 1024 + 10,
      "the trailing hole starts there",
    );
  });

  for (const [name, size, chunks] of [
    ["a chunk before the previous one's end", 100, [chunk(0, 10), chunk(5, 10)]],
    ["an empty chunk", 100, [chunk(0, 0)]],
    ["a chunk over MAX_CHUNK_SIZE", MAX_CHUNK_SIZE + 100, [chunk(0, MAX_CHUNK_SIZE + 1)]],
    ["a chunk past the file's size", 100, [chunk(0, 10), chunk(10, 200)]],
  ] as const) {
    it(`refuses ${name}`, () => {
      const sequence = new ChunkSequence("f", size);
      assert.throws(
        () => sequence.accept(chunks),
        (err: { code: string }) => err.code === ErrorCode.PROTOCOL,
      );
    });
  }

  it("refuses a FILE_END whose count or file hash differs from the chunks sent", () => {
    const chunks = [chunk(0, 10), chunk(10, 10)];
    const countOff = new ChunkSequence("f", 20);
    countOff.accept(chunks);
    assert.throws(() => countOff.end({ ...endOf(20, chunks), chunkCount: 3 }), /do not cover/);
    const hashOff = new ChunkSequence("f", 20);
    hashOff.accept(chunks);
    assert.throws(() => hashOff.end(endOf(20, [chunk(0, 10), chunk(10, 10, 99)])), /does not match/);
  });
});

describe("ManifestWalker", () => {
  it("hands a file its chunks in order, with its holes, and ends it", async () => {
    const { walk, log } = walker();
    const chunks = [chunk(0, 100), chunk(2 * 1024 * 1024, 100)];
    const size = 3 * 1024 * 1024;
    await walk.walk(
      events([
        { kind: "entries", entries: [folder("")] },
        { kind: "file-begin", entry: file("a", size) },
        { kind: "chunks", chunks },
        { kind: "file-end", digest: endOf(size, chunks) },
      ]),
      () => {},
    );
    assert.deepEqual(log.lines, [
      "open a -> /dest/a",
      "frame a 2",
      "chunk a 0+100",
      `hole a 100-${2 * 1024 * 1024}`,
      `chunk a ${2 * 1024 * 1024}+100`,
      `hole a ${2 * 1024 * 1024 + 100}-${size}`,
      "end a",
    ]);
  });

  it("gives a folder its metadata once it is left and everything inside is done, innermost first", async () => {
    const { walk, files, log } = walker();
    const chunks = [chunk(0, 5)];
    await walk.walk(
      events([
        { kind: "entries", entries: [folder(""), folder("d", 0o750), folder("d/e", 0o700)] },
        { kind: "file-begin", entry: file("d/e/f", 5) },
        { kind: "chunks", chunks },
        { kind: "file-end", digest: endOf(5, chunks) },
      ]),
      () => {},
    );
    walk.finish();
    assert.ok(!log.lines.some((line) => line.startsWith("metadata")), "the file inside is not complete yet");
    const opened = files.opened[0];
    assert.ok(opened !== undefined);
    walk.fileDone(opened);
    assert.deepEqual(
      log.lines.filter((line) => line.startsWith("metadata")),
      ["metadata /dest/d/e 700", "metadata /dest/d 750", "metadata /dest 755"],
    );
  });

  it("makes a hard link to a file still being written once that file is done", async () => {
    const { walk, files, log } = walker();
    const chunks = [chunk(0, 5)];
    await walk.walk(
      events([
        { kind: "entries", entries: [folder("")] },
        { kind: "file-begin", entry: file("a", 5) },
        { kind: "chunks", chunks },
        { kind: "file-end", digest: endOf(5, chunks) },
        { kind: "entries", entries: [hardLink("b", "a")] },
      ]),
      () => {},
    );
    assert.ok(!log.lines.some((line) => line.startsWith("link")), "not before a is complete");
    const opened = files.opened[0];
    assert.ok(opened !== undefined);
    walk.fileDone(opened);
    assert.ok(log.lines.includes("link /dest/b -> /dest/a"));
  });

  it("refuses events out of place", async () => {
    const chunks = [chunk(0, 5)];
    const cases: Array<[string, ManifestEvent[], RegExp]> = [
      ["chunks outside a file", [{ kind: "chunks", chunks }], /chunks outside a file/],
      [
        "a file inside a file",
        [
          { kind: "entries", entries: [folder("")] },
          { kind: "file-begin", entry: file("a", 5) },
          { kind: "file-begin", entry: file("b", 5) },
        ],
        /inside another file/,
      ],
      ["a file end outside a file", [{ kind: "file-end", digest: endOf(5, chunks) }], /outside a file/],
      [
        "a manifest that ends inside a file",
        [
          { kind: "entries", entries: [folder("")] },
          { kind: "file-begin", entry: file("a", 5) },
        ],
        /ended inside a file/,
      ],
      [
        "a file outside a folder the host announced",
        [{ kind: "file-begin", entry: file("x/a", 5) }],
        /not inside/,
      ],
    ];
    for (const [name, list, message] of cases) {
      await rejectsWith(
        walker().walk.walk(events(list), () => {}),
        ErrorCode.PROTOCOL,
        message,
      ).catch((err) => {
        throw new Error(`${name}: ${err}`);
      });
    }
  });

  it("refuses paths outside the pulled folder, and hard links out of it", async () => {
    const { walk } = walker("d");
    await rejectsWith(
      walk.walk(
        events([
          { kind: "entries", entries: [folder("d")] },
          { kind: "entries", entries: [folder("e")] },
        ]),
        () => {},
      ),
      ErrorCode.PROTOCOL,
    );
    await rejectsWith(
      walker("d").walk.walk(
        events([{ kind: "entries", entries: [folder("d"), hardLink("d/b", "x")] }]),
        () => {},
      ),
      ErrorCode.PROTOCOL,
      /outside the pull/,
    );
  });

  it("reports an entry the host could not read, and walks on", async () => {
    const { walk, failures } = walker();
    await walk.walk(
      events([
        { kind: "entries", entries: [folder("")] },
        { kind: "entry-error", failure: { path: "secret", code: ErrorCode.PERMISSION, message: "denied" } },
        { kind: "entries", entries: [folder("after")] },
      ]),
      () => {},
    );
    assert.deepEqual(failures, [`secret ${ErrorCode.PERMISSION}`]);
  });

  it("reports an entry the host skipped and walks on; one outside the pull or inside a file is refused", async () => {
    const { walk, failures } = walker("d");
    await walk.walk(
      events([
        { kind: "entries", entries: [folder("d")] },
        { kind: "entry-skipped", skipped: { path: "d/pipe", reason: "fifo" } },
        { kind: "entries", entries: [folder("d/after")] },
      ]),
      () => {},
    );
    assert.deepEqual(failures, ["d/pipe skipped: fifo"]);
    await rejectsWith(
      walker("d").walk.walk(
        events([
          { kind: "entries", entries: [folder("d")] },
          { kind: "entry-skipped", skipped: { path: "e/pipe", reason: "fifo" } },
        ]),
        () => {},
      ),
      ErrorCode.PROTOCOL,
      /outside the pull/,
    );
    await rejectsWith(
      walker().walk.walk(
        events([
          { kind: "entries", entries: [folder("")] },
          { kind: "file-begin", entry: file("a", 10) },
          { kind: "entry-skipped", skipped: { path: "pipe", reason: "fifo" } },
        ]),
        () => {},
      ),
      ErrorCode.PROTOCOL,
      /inside a file/,
    );
  });
});

describe("replayChunks", () => {
  const entry = file("a", 100);
  const chunks = [chunk(0, 50), chunk(50, 50)];
  const expected = endOf(100, chunks);

  function receiver(log: Log) {
    return {
      onHole: (start: number, end: number) => log.add(`hole ${start}-${end}`),
      onChunk: (c: ChunkRef) => {
        log.add(`chunk ${c.offset}`);
        return undefined;
      },
    };
  }

  it("places the same chunk list again", async () => {
    const log = new Log();
    await replayChunks(
      events([
        { kind: "file-begin", entry },
        { kind: "chunks", chunks },
        { kind: "file-end", digest: expected },
      ]),
      entry,
      expected,
      receiver(log),
    );
    assert.deepEqual(log.lines, ["chunk 0", "chunk 50"]);
  });

  it("refuses a file that changed on the host", async () => {
    await rejectsWith(
      replayChunks(
        events([{ kind: "file-begin", entry: { ...entry, mtimeMs: 2000 } }]),
        entry,
        expected,
        receiver(new Log()),
      ),
      ErrorCode.FILE_CHANGED,
    );
  });

  // The replay had its own copy of the chunk-order check, which drifted from the first pass's:
  // it lacked the MAX_CHUNK_SIZE bound and never checked the replayed list against FILE_END.
  it("checks a replayed chunk list as the first pass does: MAX_CHUNK_SIZE and FILE_END", async () => {
    const big = file("big", MAX_CHUNK_SIZE + 1);
    const oversized = [chunk(0, MAX_CHUNK_SIZE + 1)];
    const log = new Log();
    await rejectsWith(
      replayChunks(
        events([
          { kind: "chunks", chunks: oversized },
          { kind: "file-end", digest: endOf(big.size, oversized) },
        ]),
        big,
        endOf(big.size, oversized),
        receiver(log),
      ),
      ErrorCode.PROTOCOL,
      /does not follow/,
    );
    assert.deepEqual(log.lines, [], "no chunk of the bad list was placed");

    // Other chunks under the expected file hash: the list does not hash to its FILE_END.
    const other = [chunk(0, 50, 7), chunk(50, 50, 8)];
    await rejectsWith(
      replayChunks(
        events([
          { kind: "chunks", chunks: other },
          { kind: "file-end", digest: expected },
        ]),
        entry,
        expected,
        receiver(new Log()),
      ),
      ErrorCode.PROTOCOL,
      /does not match its chunk list/,
    );
  });
});
