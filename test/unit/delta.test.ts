/**
 * Deltas: signing old bytes, matching them in new bytes, rebuilding from a script — and the
 * client's side against a hostile host (scripts that point outside the window, overrun their
 * literals or the chunk, lie about the bytes, or repeat an answer): every such chunk is fetched
 * whole and nothing unverified is written.
 */
import assert from "node:assert/strict";
import { closeSync, fstatSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { hashBytes } from "../../src/chunking/hash.js";
import type { PendingRequest } from "../../src/client/channel.js";
import { DeltaFetcher } from "../../src/client/pull/delta-fetcher.js";
import { matchBlocks } from "../../src/delta/match.js";
import { rebuild } from "../../src/delta/rebuild.js";
import { type DeltaOp, decodeOps, encodeOps } from "../../src/delta/script.js";
import {
  blockSizeFor,
  MIN_BLOCK_BYTES,
  type Signature,
  sign,
  signatureProblem,
} from "../../src/delta/signature.js";
import { ErrorCode, TeleportError, toTeleportError } from "../../src/errors.js";
import type { DeltaOutcome, PlannedFile } from "../../src/receive/chunk-planner.js";
import { Work } from "../../src/receive/work.js";
import { encodeWithHeadroom } from "../../src/wire/codec.js";
import {
  type DeltaData,
  type DeltaRequest,
  DeltaStatus,
  deltaDataCodec,
  LiteralCoding,
} from "../../src/wire/delta-messages.js";
import { type ChunkRef, MessageType } from "../../src/wire/messages.js";
import { sourceText } from "../helpers/tree.js";

function roundTrip(
  old: Buffer,
  next: Buffer,
): { rebuilt: Buffer | string; literalBytes: number; ops: DeltaOp[] } {
  const signature = sign(old);
  const delta = matchBlocks(next, signature);
  const ops = decodeOps(encodeOps(delta.ops)) ?? [];
  const rebuilt = rebuild(
    { bytes: old, blockSize: signature.blockSize },
    ops,
    Buffer.concat(delta.literals),
    next.length,
  );
  return { rebuilt, literalBytes: delta.literalBytes, ops };
}

test("a one-line edit is rebuilt from the old blocks and about one block of literals", () => {
  const old = sourceText(200, "f");
  const next = Buffer.from(old.toString().replace("f_100(void)", "f_100(int edited)"));
  const { rebuilt, literalBytes } = roundTrip(old, next);
  assert.ok(Buffer.isBuffer(rebuilt) && rebuilt.equals(next));
  assert.ok(literalBytes <= 2 * blockSizeFor(old.length), `${literalBytes} literal bytes`);
});

test("an insertion at the start shifts every block, and they are still found; so is the short last block", () => {
  const old = sourceText(300, "g");
  assert.notEqual(old.length % blockSizeFor(old.length), 0);
  const next = Buffer.concat([Buffer.from("/* a new first line */\n"), old]);
  const { rebuilt, literalBytes, ops } = roundTrip(old, next);
  assert.ok(Buffer.isBuffer(rebuilt) && rebuilt.equals(next));
  assert.equal(literalBytes, 23);
  assert.equal(ops.length, 1, "consecutive blocks, the short last one too, merge into one copy");
});

test("bytes with nothing in common are all literal; empty and tiny windows work", () => {
  const old = sourceText(50, "h");
  const next = Buffer.from(sourceText(60, "zz").toString().toUpperCase());
  const { rebuilt, literalBytes } = roundTrip(old, next);
  assert.ok(Buffer.isBuffer(rebuilt) && rebuilt.equals(next));
  assert.equal(literalBytes, next.length);
  const tiny = roundTrip(Buffer.from("abc"), Buffer.from("xabc"));
  assert.ok(Buffer.isBuffer(tiny.rebuilt) && tiny.rebuilt.equals(Buffer.from("xabc")));
});

test("rebuild refuses scripts outside the window, past the chunk or its literals, or short of them", () => {
  const old = Buffer.alloc(4 * MIN_BLOCK_BYTES, 7);
  const window = { bytes: old, blockSize: MIN_BLOCK_BYTES };
  const size = 2 * MIN_BLOCK_BYTES;
  const cases: [string, DeltaOp[], Buffer, RegExp][] = [
    ["block past the window", [{ literal: 0, block: 4, count: 1 }], Buffer.alloc(0), /out of 4/],
    ["count overflowing", [{ literal: 0, block: 1, count: 0xffffffff }], Buffer.alloc(0), /out of 4/],
    ["past the chunk", [{ literal: 0, block: 0, count: 3 }], Buffer.alloc(0), /past the chunk/],
    ["literal past its bytes", [{ literal: 10, block: 0, count: 0 }], Buffer.alloc(5), /past the literal/],
    [
      "literal past the chunk",
      [{ literal: size + 1, block: 0, count: 0 }],
      Buffer.alloc(size + 1),
      /past the chunk/,
    ],
    ["short", [{ literal: 0, block: 0, count: 1 }], Buffer.alloc(0), /makes 512 bytes/],
    ["left over", [{ literal: 0, block: 0, count: 2 }], Buffer.alloc(3), /left over/],
  ];
  for (const [name, ops, literals, reason] of cases) {
    const result = rebuild(window, ops, literals, size);
    assert.equal(typeof result, "string", name);
    assert.match(String(result), reason, name);
  }
});

test("a signature from the network is checked for its shape", () => {
  const good: Signature = sign(Buffer.alloc(10_000, 1));
  assert.equal(signatureProblem(good), undefined);
  assert.match(signatureProblem({ ...good, blockSize: 16 }) ?? "", /block size/);
  assert.match(signatureProblem({ ...good, windowLength: good.windowLength * 2 }) ?? "", /does not match/);
  assert.match(signatureProblem({ ...good, windowLength: 0 }) ?? "", /window/);
  assert.match(signatureProblem({ ...good, windowLength: 2 ** 31 }) ?? "", /window/);
});

/** A DeltaFetcher over real old and part files, and a host whose answers a test writes. */
async function fetcherWith(answer: (request: DeltaRequest) => DeltaData[]) {
  const dir = await mkdtemp(join(tmpdir(), "teleport-delta-"));
  const old = sourceText(100, "old");
  const next = Buffer.from(old.toString().replace("old_40(void)", "old_40(int edited)"));
  writeFileSync(join(dir, "f"), old);
  writeFileSync(join(dir, "f.part"), Buffer.alloc(0));
  const fd = openSync(join(dir, "f.part"), "r+");
  const chunk: ChunkRef = { offset: 0, size: next.length, hash: hashBytes(next) };
  const file: PlannedFile = {
    wirePath: "f",
    finalPath: join(dir, "f"),
    fd,
    download: undefined,
    copiesLocally: false,
    oldCopyId: undefined,
    otherVersionId: undefined,
    deltaBase: true,
    onJournaled: () => {},
    onWritten: () => {},
  };
  const outcomes: string[] = [];
  const outcome: DeltaOutcome = {
    rebuilt: (_file, _chunk, literalBytes) => outcomes.push(`rebuilt ${literalBytes}`),
    fetchWhole: () => outcomes.push("whole"),
  };
  const work = new Work();
  const fetcher = new DeltaFetcher({
    channel: {
      requestDeltas(request: DeltaRequest, pending: PendingRequest) {
        setImmediate(() => {
          try {
            for (const data of answer(request)) {
              const body = encodeWithHeadroom(deltaDataCodec, data, 0);
              // As the channel does: a frame over the request's credit is a protocol error.
              if (body.length > pending.credit) throw new TeleportError(ErrorCode.PROTOCOL, "over credit");
              pending.credit -= body.length;
              pending.onFrame(MessageType.DELTA_DATA, body);
            }
            pending.onEnd();
          } catch (err) {
            pending.onError(toTeleportError(err));
          }
        });
        return () => {};
      },
    },
    openOldCopy: (path) => {
      const oldFd = openSync(path, "r");
      return { fd: oldFd, stats: fstatSync(oldFd, { bigint: true }) };
    },
    readLocally: () => {},
    work,
  });
  return {
    next,
    outcomes,
    report: fetcher.report,
    /** Offers the chunk `times` over, each answered before the next; what was written, and whether each was taken. */
    async run(times = 1): Promise<Buffer> {
      for (let i = 0; i < times; i++) {
        if (!fetcher.offer(file, chunk, outcome)) {
          outcomes.push("declined");
          continue;
        }
        fetcher.flush();
        await work.drain();
        work.throwIfFailed();
      }
      const written = readFileSync(join(dir, "f.part"));
      closeSync(fd);
      await rm(dir, { recursive: true });
      return written;
    },
  };
}

/** The honest answer to a one-item request, as the host makes it. */
function honest(request: DeltaRequest, next: Buffer): { ops: Buffer; literals: Buffer } {
  const item = request.items[0];
  assert.ok(item !== undefined);
  const delta = matchBlocks(next, {
    blockSize: item.blockSize,
    windowLength: item.windowLength,
    entries: item.signature,
  });
  return { ops: encodeOps(delta.ops), literals: Buffer.concat(delta.literals) };
}

function frame(ops: Buffer, literals: Buffer, index = 0, status: number = DeltaStatus.SCRIPT): DeltaData {
  return {
    results: [{ index, status, ops }],
    literalBytes: literals.length,
    literalCoding: LiteralCoding.RAW,
    literals,
  };
}

test("an honest answer is rebuilt, verified and written at the chunk's offset", async () => {
  let next = Buffer.alloc(0);
  const setup = await fetcherWith((request) => {
    const { ops, literals } = honest(request, next);
    return [frame(ops, literals)];
  });
  next = setup.next;
  const written = await setup.run();
  assert.ok(written.equals(next));
  assert.equal(setup.outcomes.length, 1);
  assert.match(setup.outcomes[0] ?? "", /^rebuilt \d+$/);
  assert.ok(setup.report.literalBytes < next.length / 4);
});

test("hostile answers fall back to fetching the chunk whole and write nothing", async () => {
  const hostile: [string, (request: DeltaRequest, next: Buffer) => DeltaData[]][] = [
    [
      "a block outside the window",
      () => [frame(encodeOps([{ literal: 0, block: 1000, count: 1 }]), Buffer.alloc(0))],
    ],
    [
      "a lie that fails the hash",
      (request, next) => {
        const { ops, literals } = honest(request, next);
        const lie = Buffer.from(literals);
        lie[0] = (lie[0] ?? 0) ^ 1;
        return [frame(ops, lie)];
      },
    ],
    ["more literals than the request's credit", () => [frame(Buffer.alloc(0), Buffer.alloc(1 << 20))]],
    [
      "literal bytes claimed beyond the chunks asked for",
      () => [
        {
          ...frame(Buffer.alloc(0), Buffer.alloc(0)),
          literalBytes: 1 << 20,
          literalCoding: LiteralCoding.ZSTD,
        },
      ],
    ],
    ["a result for an item not asked for", () => [frame(Buffer.alloc(0), Buffer.alloc(0), 5)]],
    [
      "the same item answered twice",
      (request, next) => {
        const { ops, literals } = honest(request, next);
        return [frame(Buffer.alloc(0), Buffer.alloc(0), 0, DeltaStatus.UNAVAILABLE), frame(ops, literals)];
      },
    ],
    ["a script of a broken length", () => [frame(Buffer.alloc(5), Buffer.alloc(0))]],
    ["an unknown status", () => [frame(Buffer.alloc(0), Buffer.alloc(0), 0, 9)]],
    ["no answer at all", () => []],
    [
      "corrupt compressed literals",
      () => [{ ...frame(Buffer.alloc(0), Buffer.alloc(10)), literalCoding: LiteralCoding.ZSTD }],
    ],
  ];
  for (const [name, answer] of hostile) {
    let next = Buffer.alloc(0);
    const setup = await fetcherWith((request) => answer(request, next));
    next = setup.next;
    const written = await setup.run();
    assert.deepEqual(setup.outcomes, ["whole"], name);
    assert.equal(written.length, 0, `${name}: nothing written`);
    assert.equal(setup.report.chunks, 0, name);
  }
});

test("a file whose deltas find nothing of its old copy gets no more", async () => {
  let next = Buffer.alloc(0);
  const setup = await fetcherWith(() => [
    frame(encodeOps([{ literal: next.length, block: 0, count: 0 }]), next),
  ]);
  next = setup.next;
  const written = await setup.run(3);
  assert.ok(written.equals(next));
  assert.deepEqual(setup.outcomes, [`rebuilt ${next.length}`, `rebuilt ${next.length}`, "declined"]);
});
