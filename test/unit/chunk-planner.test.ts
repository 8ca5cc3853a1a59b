import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setImmediate } from "node:timers/promises";
import type { ChunkWrite } from "../../src/client/pool/stream-pool.js";
import type { ByteSource } from "../../src/client/pull/summary.js";
import { ErrorCode, TeleportError } from "../../src/errors.js";
import {
  type ChunkFetcher,
  ChunkPlanner,
  type Download,
  type DownloadJournal,
  type LocalChunks,
  type PlannedFile,
} from "../../src/receive/chunk-planner.js";
import type { CopyResult, CopyRun, SourcePlace } from "../../src/receive/local-copies.js";
import { Work } from "../../src/receive/work.js";
import type { ChunkRef } from "../../src/wire/messages.js";

function chunk(offset: number, size: number, tag: number): ChunkRef {
  return { offset, size, hash: Buffer.alloc(32, tag) };
}

function key(fileId: number, offset: number, hash: Buffer): string {
  return `${fileId}:${offset}:${hash.toString("hex")}`;
}

/** Data streams that hold each batch until `complete()`. */
class FakeFetcher implements ChunkFetcher {
  windowBytes = 1024 * 1024;
  batchBytes = 1024 * 1024;
  readonly batches: ChunkWrite[][] = [];
  readonly #waiting: Array<() => void> = [];

  fetch(chunks: ChunkWrite[]): Promise<void> {
    this.batches.push(chunks);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  complete(): void {
    for (const resolve of this.#waiting.splice(0)) resolve();
  }

  get fetchedOffsets(): number[] {
    return this.batches.flat().map((c) => c.offset);
  }
}

class FakeJournal implements DownloadJournal {
  readonly rows = new Set<string>();
  readonly recorded: string[] = [];
  has(downloadId: number, chunk: ChunkRef): boolean {
    return this.rows.has(key(downloadId, chunk.offset, chunk.hash));
  }
  record(downloadId: number, chunk: ChunkRef): void {
    this.recorded.push(`${downloadId}@${chunk.offset}`);
  }
}

class FakeLocal implements LocalChunks {
  /** Chunks at offsets of index files, as `key` makes them. */
  readonly at = new Set<string>();
  /** What `find` answers, by hash. */
  readonly elsewhere = new Map<string, SourcePlace>();
  readonly forgotten: number[] = [];
  finds = 0;
  hasChunkAt(fileId: number, offset: number, hash: Buffer): boolean {
    return this.at.has(key(fileId, offset, hash));
  }
  find(hash: Buffer): SourcePlace | undefined {
    this.finds++;
    return this.elsewhere.get(hash.toString("hex"));
  }
  forget(fileId: number): void {
    this.forgotten.push(fileId);
  }
}

class FakeFile implements PlannedFile {
  readonly wirePath = "f";
  readonly finalPath = "/dest/f";
  readonly fd = 42;
  readonly deltaBase = false;
  journaled = 0;
  readonly written: string[] = [];
  constructor(
    readonly download: Download | undefined,
    readonly oldCopyId: number | undefined = undefined,
    readonly copiesLocally = true,
    readonly otherVersionId: number | undefined = undefined,
  ) {}
  onJournaled(chunks: number): void {
    this.journaled += chunks;
  }
  onWritten(bytes: number, source: ByteSource): void {
    this.written.push(`${bytes} ${source}`);
  }
}

/** A planner over fakes; copies "succeed" unless `mismatch` says which offsets do not verify. */
function planner(options: { mismatch?: Set<number>; scheduleFlush?: (flush: () => void) => void } = {}) {
  const fetcher = new FakeFetcher();
  const journal = new FakeJournal();
  const local = new FakeLocal();
  const work = new Work();
  const runs: Array<{ sourceFileId: number; offsets: number[] }> = [];
  const copy = async (run: CopyRun): Promise<CopyResult> => {
    runs.push({ sourceFileId: run.sourceFileId, offsets: run.chunks.map((c) => c.offset) });
    const bad = (c: ChunkRef) => options.mismatch?.has(c.offset) === true;
    return { copied: run.chunks.filter((c) => !bad(c)), mismatched: run.chunks.filter(bad) };
  };
  const plan = new ChunkPlanner({
    local,
    journal,
    fetcher,
    work,
    tally: { readLocally: () => {}, report: () => {} },
    copy,
    scheduleFlush: options.scheduleFlush ?? ((flush) => void globalThis.setImmediate(flush)),
  });
  return { plan, fetcher, journal, local, work, runs };
}

/** Lets scheduled flushes and settled work run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await setImmediate();
}

describe("ChunkPlanner", () => {
  it("leaves a chunk already in the resumed download where it is", async () => {
    const { plan, fetcher, journal, local } = planner();
    const file = new FakeFile({ id: 7, resumed: true });
    const c = chunk(0, 100, 1);
    journal.rows.add(key(7, 0, c.hash));
    assert.equal(plan.place(file, c), undefined);
    await settle();
    assert.deepEqual(file.written, ["100 resumed"]);
    assert.equal(file.journaled, 1);
    assert.equal(fetcher.batches.length, 0, "nothing fetched");
    assert.equal(local.finds, 0, "nothing looked up");
  });

  it("copies chunks of the old copy at their offset in one run, and fetches the rest, journaling both", async () => {
    const { plan, fetcher, journal, local, work, runs } = planner();
    const file = new FakeFile({ id: 3, resumed: false }, 5);
    const chunks = [chunk(0, 10, 1), chunk(10, 10, 2), chunk(20, 10, 3)];
    local.at.add(key(5, 0, Buffer.alloc(32, 1)));
    local.at.add(key(5, 10, Buffer.alloc(32, 2)));
    for (const c of chunks) assert.equal(plan.place(file, c), undefined);
    assert.equal(plan.endFile(file), undefined);
    await settle();
    assert.deepEqual(runs, [{ sourceFileId: 5, offsets: [0, 10] }], "one run for both");
    assert.deepEqual(fetcher.fetchedOffsets, [20]);
    fetcher.complete();
    await work.drain();
    assert.deepEqual(file.written, ["10 existing", "10 existing", "10 network"]);
    assert.deepEqual(journal.recorded.sort(), ["3@0", "3@10", "3@20"]);
    assert.equal(file.journaled, 3);
  });

  it("goes on copying from where a shifted source's previous chunk ended while its next chunk is there", async () => {
    const { plan, fetcher, local, work, runs } = planner();
    const file = new FakeFile(undefined);
    // The first chunk is found at offset 500 of file 8 (bytes inserted before it); the second is
    // known only as the next chunk there, not to a lookup by hash.
    local.elsewhere.set(Buffer.alloc(32, 1).toString("hex"), { fileId: 8, path: "/other", offset: 500 });
    local.at.add(key(8, 510, Buffer.alloc(32, 2)));
    plan.place(file, chunk(0, 10, 1));
    plan.place(file, chunk(10, 10, 2));
    await plan.endFile(file);
    await settle();
    assert.deepEqual(runs, [{ sourceFileId: 8, offsets: [0, 10] }]);
    assert.equal(fetcher.batches.length, 0);
    await work.drain();
  });

  it("counts chunks copied from another file of the index as index, from an older download as resumed", async () => {
    const { plan, local, work } = planner();
    const file = new FakeFile(undefined, undefined, true, 9);
    local.elsewhere.set(Buffer.alloc(32, 1).toString("hex"), { fileId: 8, path: "/other", offset: 500 });
    local.elsewhere.set(Buffer.alloc(32, 2).toString("hex"), { fileId: 9, path: "/part", offset: 0 });
    plan.place(file, chunk(0, 10, 1));
    await plan.place(file, chunk(10, 10, 2));
    await plan.endFile(file);
    await settle();
    await work.drain();
    assert.deepEqual(file.written, ["10 index", "10 resumed"]);
  });

  it("fetches a copied chunk that does not verify, and stops trusting its source", async () => {
    const { plan, fetcher, local, work } = planner({ mismatch: new Set([10]) });
    const file = new FakeFile(undefined, 5);
    local.at.add(key(5, 0, Buffer.alloc(32, 1)));
    local.at.add(key(5, 10, Buffer.alloc(32, 2)));
    plan.place(file, chunk(0, 10, 1));
    plan.place(file, chunk(10, 10, 2));
    await plan.endFile(file);
    await settle();
    assert.deepEqual(local.forgotten, [5]);
    assert.deepEqual(fetcher.fetchedOffsets, [10]);
    fetcher.complete();
    await work.drain();
    assert.deepEqual(file.written, ["10 existing", "10 network"]);
  });

  it("never looks up the chunks of a file too small to copy locally", async () => {
    const { plan, fetcher, local } = planner();
    local.at.add(key(5, 0, Buffer.alloc(32, 1)));
    const file = new FakeFile(undefined, 5, false);
    plan.place(file, chunk(0, 10, 1));
    await settle();
    assert.equal(local.finds, 0);
    assert.deepEqual(fetcher.fetchedOffsets, [0]);
  });

  it("gathers the chunks of small files into one batch until its flush is due", async () => {
    const due: Array<() => void> = [];
    const { plan, fetcher } = planner({ scheduleFlush: (flush) => due.push(flush) });
    for (let i = 0; i < 5; i++) plan.place(new FakeFile(undefined, undefined, false), chunk(0, 10, i));
    await settle();
    assert.equal(fetcher.batches.length, 0, "a batch that is not full waits");
    assert.equal(due.length, 1, "one flush scheduled for the batch");
    due[0]?.();
    assert.deepEqual(
      fetcher.batches.map((batch) => batch.length),
      [5],
    );
  });

  it("holds a chunk back while the window is full, until written chunks make room", async () => {
    const { plan, fetcher, work } = planner();
    fetcher.windowBytes = 100;
    const file = new FakeFile(undefined);
    assert.equal(plan.place(file, chunk(0, 60, 1)), undefined, "the first fits");
    const waiting = plan.place(file, chunk(60, 60, 2));
    assert.ok(waiting !== undefined, "60 + 60 bytes do not fit a window of 100");
    let placed = false;
    void waiting.then(() => {
      placed = true;
    });
    await settle();
    assert.equal(placed, false);
    assert.deepEqual(fetcher.fetchedOffsets, [0], "the wait sent what was batched");
    fetcher.complete();
    await waiting;
    assert.equal(placed, true);
    await settle();
    assert.deepEqual(fetcher.fetchedOffsets, [0, 60]);
    fetcher.complete();
    await work.drain();
    assert.deepEqual(file.written, ["60 network", "60 network"]);
  });

  it("stops waiting for room when the pull fails", async () => {
    const { plan, fetcher, work } = planner();
    fetcher.windowBytes = 100;
    const file = new FakeFile(undefined);
    plan.place(file, chunk(0, 60, 1));
    const waiting = plan.place(file, chunk(60, 60, 2));
    assert.ok(waiting !== undefined);
    work.fail(new TeleportError(ErrorCode.CANCELLED, "pull cancelled"));
    await assert.rejects(waiting, (err: TeleportError) => err.code === ErrorCode.CANCELLED);
  });
});
