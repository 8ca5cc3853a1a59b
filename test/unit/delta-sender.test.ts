/**
 * The host's side of DELTA against what a client may send: a request over its bounds or a
 * malformed signature is refused; a chunk not where the client says is answered UNAVAILABLE; an
 * honest one gets a script that rebuilds it, with its literals compressed.
 */
import assert from "node:assert/strict";
import { openSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { hashBytes } from "../../src/chunking/hash.js";
import { Decompressor } from "../../src/compression/zstd.js";
import { rebuild } from "../../src/delta/rebuild.js";
import { decodeOps } from "../../src/delta/script.js";
import { sign } from "../../src/delta/signature.js";
import type { Connection } from "../../src/engine/connection.js";
import { DeltaSender } from "../../src/host/delta-sender.js";
import { OpenFiles } from "../../src/serve/open-files.js";
import type { Codec } from "../../src/wire/codec.js";
import {
  type DeltaData,
  type DeltaItem,
  DeltaStatus,
  LiteralCoding,
  MAX_DELTA_CHUNK_BYTES,
} from "../../src/wire/delta-messages.js";
import { sourceText } from "../helpers/tree.js";

async function senderOver(content: Buffer) {
  const dir = await mkdtemp(join(tmpdir(), "teleport-delta-sender-"));
  writeFileSync(join(dir, "f.c"), content);
  const sent: DeltaData[] = [];
  const connection = {
    send: <T>(_type: number, _requestId: number, _codec: Codec<T>, value: T) => sent.push(value as DeltaData),
    whenWritable: () => Promise.resolve(),
  } as unknown as Connection;
  const openFiles = new OpenFiles((wirePath) => ({
    fd: openSync(join(dir, wirePath), "r"),
    identity: { dev: 0, ino: 0, size: content.length, mtimeMs: 0 },
    size: content.length,
  }));
  const sender = new DeltaSender(connection, openFiles);
  return {
    sent,
    send: (items: DeltaItem[]) => sender.send(1, items, new AbortController().signal),
    async close() {
      openFiles.closeAll();
      await rm(dir, { recursive: true });
    },
  };
}

function itemFor(old: Buffer, next: Buffer, changes: Partial<DeltaItem> = {}): DeltaItem {
  const signature = sign(old);
  return {
    hash: hashBytes(next),
    size: next.length,
    path: "f.c",
    offset: 0,
    blockSize: signature.blockSize,
    windowLength: signature.windowLength,
    signature: signature.entries,
    ...changes,
  };
}

test("an honest DELTA item is answered with a script that rebuilds the chunk, literals compressed", async () => {
  const old = sourceText(300, "f");
  const next = Buffer.from(old.toString().replace("f_150(void)", "f_150(int changed, int again)"));
  const host = await senderOver(next);
  await host.send([itemFor(old, next)]);
  const [answer] = host.sent;
  assert.ok(answer !== undefined);
  const [result] = answer.results;
  assert.equal(result?.status, DeltaStatus.SCRIPT);
  assert.ok(answer.literalBytes < next.length / 4, `${answer.literalBytes} literal bytes`);
  assert.equal(answer.literalCoding, LiteralCoding.ZSTD);
  const literals = Buffer.alloc(answer.literalBytes);
  new Decompressor().decompressExactly(literals, answer.literals);
  const ops = decodeOps(result?.ops ?? Buffer.alloc(1)) ?? [];
  const rebuilt = rebuild({ bytes: old, blockSize: sign(old).blockSize }, ops, literals, next.length);
  assert.ok(Buffer.isBuffer(rebuilt) && rebuilt.equals(next));
  await host.close();
});

test("chunks not where the client says, or too large, are UNAVAILABLE; bad requests are refused", async () => {
  const old = sourceText(100, "g");
  const next = sourceText(101, "g");
  const host = await senderOver(next);
  await host.send([
    itemFor(old, next, { hash: Buffer.alloc(32) }),
    itemFor(old, next, { path: "missing.c" }),
    itemFor(old, next, { offset: 10 }),
    itemFor(old, next, { size: MAX_DELTA_CHUNK_BYTES + 1 }),
  ]);
  assert.deepEqual(
    host.sent.flatMap((answer) => answer.results.map((result) => result.status)),
    [DeltaStatus.UNAVAILABLE, DeltaStatus.UNAVAILABLE, DeltaStatus.UNAVAILABLE, DeltaStatus.UNAVAILABLE],
  );
  const good = itemFor(old, next);
  await assert.rejects(host.send([{ ...good, blockSize: 7 }]), /block size/);
  await assert.rejects(host.send([{ ...good, signature: good.signature.subarray(12) }]), /does not match/);
  await assert.rejects(host.send(Array.from({ length: 20 }, () => ({ ...good, size: 1 << 20 }))), /over/);
  await host.close();
});
