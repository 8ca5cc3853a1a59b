import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ChunkListHash } from "../../src/chunking/manifest.js";
import { UNJOURNALED_FILE_BYTES } from "../../src/chunking/thresholds.js";
import type { ManifestEvent } from "../../src/client/client.js";
import type { PlannedFile } from "../../src/receive/chunk-planner.js";
import { FileTransfer, type TransferContext } from "../../src/receive/file-transfer.js";
import type { Folder, WalkedFile } from "../../src/receive/manifest-walker.js";
import { FileReservation, ReservationBudget } from "../../src/receive/reservation.js";
import type { IndexedFile } from "../../src/store/chunk-index.js";
import { type ChunkRef, EntryKind, type FileEnd } from "../../src/wire/messages.js";

const scratch = mkdtempSync(join(tmpdir(), "teleport-file-transfer-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

function chunk(offset: number, size: number, tag: number): ChunkRef {
  return { offset, size, hash: Buffer.alloc(32, tag) };
}

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

let files = 0;
function walked(size: number): WalkedFile {
  const folder: Folder = {
    wirePath: "",
    localPath: scratch,
    entry: undefined,
    parent: undefined,
    pending: 1,
    listed: false,
    finished: false,
    names: undefined,
  };
  const name = `f${files++}`;
  const entry = { kind: EntryKind.FILE, path: name, size, mode: 0o644, mtimeMs: 1000, linkTarget: "" };
  return { entry, finalPath: join(scratch, name), folder, otherNames: [] };
}

async function* events(list: readonly ManifestEvent[]): AsyncGenerator<ManifestEvent> {
  for (const event of list) yield event;
}

interface Setup {
  /** With a chunk index: what it says of the old copy. */
  index?: { oldCopyHash?: Buffer; indexed?: IndexedFile };
  /** The manifest a replay gets. */
  replay?: ManifestEvent[];
  /** Why the destination refuses to commit (a full disk, a rename refused). */
  commitError?: Error;
}

/** A transfer context of fakes that logs what the transfer asked for. */
function fakes(setup: Setup = {}) {
  const log: string[] = [];
  const placed: Array<{ file: PlannedFile; chunk: ChunkRef }> = [];
  const failures: unknown[] = [];
  const context: TransferContext = {
    destination: {
      mayExist: () => true,
      createPartFile: (finalPath) => {
        const path = `${finalPath}.part`;
        writeFileSync(path, "");
        log.push("create part file");
        return { path, fd: -1 };
      },
      reopenPartFile: () => undefined,
      reservation: () => new FileReservation(new ReservationBudget(), () => log.push("preallocate")),
      clearRange: () => log.push("clear range"),
      commit: (_part, _finalPath, _file, truncate) => {
        if (setup.commitError !== undefined) throw setup.commitError;
        log.push(`commit${truncate ? " truncated" : ""}`);
        return false;
      },
      keepOldCopy: () => {
        log.push("keep old copy");
        return "as-it-was";
      },
    },
    planner: {
      place: (file, c) => {
        placed.push({ file, chunk: c });
        return undefined;
      },
      endFile: () => undefined,
    },
    index:
      setup.index === undefined
        ? undefined
        : {
            downloads: {
              find: () => undefined,
              claim: () => {},
              start: () => {
                log.push("start download");
                return 11;
              },
              finish: (id) => log.push(`finish download ${id}`),
              refresh: () => {},
              forget: (id) => log.push(`forget ${id}`),
              recordComplete: () => log.push("record complete file"),
            },
            oldCopies: {
              hashOf: () => setup.index?.oldCopyHash,
              indexed: async () => setup.index?.indexed,
            },
            localChunks: { changed: () => {} },
          },
    tally: {
      announced: () => {},
      written: (bytes, source) => log.push(`${bytes} ${source}`),
      report: () => {},
    },
    work: { fail: (error) => failures.push(error), throwIfFailed: () => {} },
    xattrs: false,
    manifestOf: () => events(setup.replay ?? []),
    finished: () => log.push("finished"),
  };
  /** Commits run as the last byte is written: none of them failed the pull. */
  const settle = async () => {
    assert.deepEqual(failures, []);
  };
  return { context, log, placed, failures, settle };
}

/** The planner writing every chunk it was given, as the streams would. */
function writeAll(placed: Array<{ file: PlannedFile; chunk: ChunkRef }>): void {
  for (const { file, chunk: c } of placed.splice(0)) file.onWritten(c.size, "network");
}

describe("FileTransfer", () => {
  it("keeps an unindexed old copy that hashes the same, and writes nothing", async () => {
    const chunks = [chunk(0, 100, 1)];
    const end = endOf(100, chunks);
    const { context, log, placed, settle } = fakes({ index: { oldCopyHash: end.fileHash } });
    const transfer = await FileTransfer.start(walked(100), context);
    for (const c of chunks) assert.equal(transfer.onChunk(c), undefined);
    await transfer.onEnd(end);
    await settle();
    assert.deepEqual(placed, [], "while probed, chunks are only hashed");
    assert.deepEqual(log, ["100 existing", "keep old copy", "finished"]);
  });

  it("writes a probed file that turns out changed: its kept chunks, then the holes after them", async () => {
    // The hole check: a kept chunk list that ends before the file does must still complete it.
    const chunks = [chunk(0, 100, 1)];
    const end = endOf(300, chunks);
    const { context, log, placed, settle } = fakes({ index: { oldCopyHash: Buffer.alloc(32, 9) } });
    const transfer = await FileTransfer.start(walked(300), context);
    transfer.onChunk(chunks[0] as ChunkRef);
    transfer.onHole(100, 300);
    assert.deepEqual(log, [], "nothing written while probing");
    await transfer.onEnd(end);
    assert.deepEqual(
      placed.map((p) => p.chunk.offset),
      [0],
    );
    writeAll(placed);
    await settle();
    assert.deepEqual(log, ["create part file", "200 hole", "100 network", "commit truncated", "finished"]);
  });

  it("commits once its end has come and every byte is written, not before, and once", async () => {
    const chunks = [chunk(0, 100, 1), chunk(100, 50, 2)];
    const { context, log, placed, settle } = fakes();
    const transfer = await FileTransfer.start(walked(150), context);
    for (const c of chunks) transfer.onChunk(c);
    writeAll(placed);
    await settle();
    assert.ok(!log.includes("commit"), "every byte is written, but the end has not come");
    await transfer.onEnd(endOf(150, chunks));
    await settle();
    assert.deepEqual(
      log.filter((line) => line.startsWith("commit") || line === "finished"),
      ["commit", "finished"],
    );
  });

  it("fails the pull when its commit fails, and never counts the file as finished", async () => {
    const chunks = [chunk(0, 100, 1)];
    const commitError = Object.assign(new Error("no space left"), { code: "ENOSPC" });
    const { context, log, placed, failures } = fakes({ commitError });
    const transfer = await FileTransfer.start(walked(100), context);
    transfer.onChunk(chunks[0] as ChunkRef);
    await transfer.onEnd(endOf(100, chunks));
    writeAll(placed);
    assert.equal(failures.length, 1, "the commit's error fails the pull");
    assert.match(String(failures[0]), /no space left/);
    assert.ok(!log.includes("finished"));
  });

  it("asks for the manifest again when an indexed old copy differs, and journals the new version", async () => {
    const size = UNJOURNALED_FILE_BYTES + 100;
    const chunks = [chunk(0, UNJOURNALED_FILE_BYTES, 1), chunk(UNJOURNALED_FILE_BYTES, 100, 2)];
    const end = endOf(size, chunks);
    const file = walked(size);
    const indexed: IndexedFile = {
      id: 5,
      path: file.finalPath,
      chunker: "cdc",
      size,
      fileHash: Buffer.alloc(32, 7),
      chunkCount: 2,
    };
    const replay: ManifestEvent[] = [
      { kind: "file-begin", entry: file.entry },
      { kind: "chunks", chunks },
      { kind: "file-end", digest: end },
    ];
    const { context, log, placed, settle } = fakes({ index: { indexed }, replay });
    const transfer = await FileTransfer.start(file, context);
    transfer.onChunks(chunks);
    for (const c of chunks) transfer.onChunk(c);
    assert.equal(placed.length, 0, "probed first");
    await transfer.onEnd(end);
    assert.deepEqual(
      placed.map((p) => p.chunk.offset),
      [0, UNJOURNALED_FILE_BYTES],
      "placed from the replay",
    );
    assert.equal(placed[0]?.file.oldCopyId, 5, "the old copy is a source of chunks");
    writeAll(placed);
    await settle();
    assert.deepEqual(log, [
      "create part file",
      "start download",
      `${UNJOURNALED_FILE_BYTES} network`,
      "100 network",
      "commit",
      "finish download 11",
      "finished",
    ]);
  });

  it("after a failure removes its part file unless its download has journaled chunks", async () => {
    const unjournaled = fakes();
    const lost = await FileTransfer.start(walked(100), unjournaled.context);
    lost.onChunk(chunk(0, 50, 1));
    const lostPart = `${lost.file.finalPath}.part`;
    assert.ok(existsSync(lostPart));
    lost.abandon();
    assert.ok(!existsSync(lostPart), "nothing to resume: removed");

    const size = UNJOURNALED_FILE_BYTES + 100;
    const journaled = fakes({ index: {} });
    const kept = await FileTransfer.start(walked(size), journaled.context);
    kept.onChunk(chunk(0, 50, 1));
    const keptPart = `${kept.file.finalPath}.part`;
    journaled.placed[0]?.file.onJournaled(1);
    kept.abandon();
    assert.ok(existsSync(keptPart), "its journal holds a chunk: kept to resume");
    assert.ok(!journaled.log.some((line) => line.startsWith("forget")));
  });
});
