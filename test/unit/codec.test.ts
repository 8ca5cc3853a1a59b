import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode, isTeleportError } from "../../src/errors.js";
import { decodeMessage, encodeWithHeadroom } from "../../src/wire/codec.js";
import {
  FRAME_HEADER_SIZE,
  FrameDecoder,
  LARGE_BODY_THRESHOLD,
  writeFrameHeader,
} from "../../src/wire/frame.js";
import {
  type Entry,
  EntryKind,
  entriesCodec,
  errorCodec,
  getChunksRequestCodec,
  helloCodec,
  MAX_FRAME_BODY,
} from "../../src/wire/messages.js";
import { seededRandom } from "../helpers/seed.js";
import { pseudoRandomBytes } from "../helpers/tree.js";

const entry: Entry = {
  kind: EntryKind.FILE,
  path: "dossier/été 2026/naïve file.txt",
  size: 2 ** 40 + 7,
  mode: 0o644,
  mtimeMs: 1_764_000_000_123.5,
  linkTarget: "",
};

describe("message codecs", () => {
  it("round-trips entries, including unicode paths and sizes above 4 GiB", () => {
    const encoded = encodeWithHeadroom(
      entriesCodec,
      { entries: [entry, { ...entry, kind: EntryKind.SYMLINK, linkTarget: "../x" }] },
      0,
    );
    assert.deepEqual(decodeMessage(entriesCodec, encoded).entries, [
      entry,
      { ...entry, kind: EntryKind.SYMLINK, linkTarget: "../x" },
    ]);
  });

  it("ERROR's trailing auth delay: absent from older hosts' errors, read where a host sends it", () => {
    const refused = { code: ErrorCode.AUTH, message: "the link's secret was not accepted" };
    const old = encodeWithHeadroom(errorCodec, refused, 0);
    assert.equal(decodeMessage(errorCodec, old).authDelayWindowMs, undefined);
    const delayed = encodeWithHeadroom(errorCodec, { ...refused, authDelayWindowMs: 60_000 }, 0);
    assert.deepEqual(decodeMessage(errorCodec, delayed), {
      ...refused,
      authDelayWindowMs: 60_000,
      retryAfterMs: undefined,
    });
  });

  it("ERROR's trailing retry time: a busy host's follows an auth delay of 0", () => {
    const busy = { code: ErrorCode.HOST_BUSY, message: "host busy, retry in 2 s", authDelayWindowMs: 0 };
    const encoded = encodeWithHeadroom(errorCodec, { ...busy, retryAfterMs: 1500 }, 0);
    assert.deepEqual(decodeMessage(errorCodec, encoded), { ...busy, retryAfterMs: 1500 });
  });

  it("round-trips a chunk request list", () => {
    const chunks = [
      { hash: pseudoRandomBytes(32, "chunk request"), size: 1 << 20, path: "a/b", offset: 3 << 20 },
    ];
    const decoded = decodeMessage(
      getChunksRequestCodec,
      encodeWithHeadroom(getChunksRequestCodec, { chunks }, 0),
    );
    assert.deepEqual(
      decoded.chunks.map((c) => ({ ...c, hash: Buffer.from(c.hash) })),
      chunks,
    );
  });

  it("refuses every truncation of a valid message with a protocol error", () => {
    const encoded = encodeWithHeadroom(entriesCodec, { entries: [entry] }, 0);
    for (let length = 0; length < encoded.length; length++) {
      assert.throws(
        () => decodeMessage(entriesCodec, encoded.subarray(0, length)),
        (err) => isTeleportError(err, ErrorCode.PROTOCOL),
        `truncated to ${length} bytes`,
      );
    }
  });

  it("refuses invalid UTF-8 instead of replacing it", () => {
    const encoded = encodeWithHeadroom(entriesCodec, { entries: [{ ...entry, path: "ab" }] }, 0);
    const at = encoded.indexOf("ab");
    encoded[at] = 0xff;
    assert.throws(
      () => decodeMessage(entriesCodec, encoded),
      (err) => isTeleportError(err, ErrorCode.PROTOCOL),
    );
  });

  it("refuses list counts and lengths beyond their caps before allocating", () => {
    const huge = Buffer.alloc(8);
    huge.writeUInt16LE(0xffff, 0);
    assert.throws(
      () => decodeMessage(entriesCodec, huge),
      (err) => isTeleportError(err, ErrorCode.PROTOCOL),
    );
    const hello = encodeWithHeadroom(
      helloCodec,
      { magic: 1, minVersion: 1, maxVersion: 1, features: 0, authProof: Buffer.alloc(32), clientName: "x" },
      0,
    );
    hello.writeUInt16LE(0xffff, hello.length - 3); // clientName length, far beyond the bytes left
    assert.throws(
      () => decodeMessage(helloCodec, hello),
      (err) => isTeleportError(err, ErrorCode.PROTOCOL),
    );
  });

  it("never throws anything but a TeleportError on random bytes", (t) => {
    const random = seededRandom(t);
    for (let i = 0; i < 2000; i++) {
      const junk = random.bytes(i % 200);
      try {
        decodeMessage(entriesCodec, junk);
      } catch (err) {
        assert.ok(isTeleportError(err), `unexpected ${String(err)}`);
      }
    }
  });
});

function frame(type: number, requestId: number, body: Buffer): Buffer {
  const out = Buffer.alloc(FRAME_HEADER_SIZE + body.length);
  writeFrameHeader(out, 0, type, requestId, body.length);
  body.copy(out, FRAME_HEADER_SIZE);
  return out;
}

function collectingDecoder() {
  const frames: { type: number; requestId: number; body: Buffer }[] = [];
  let allocations = 0;
  const decoder = new FrameDecoder(
    {
      allocateBody: (_type, _id, length) => {
        allocations++;
        return Buffer.alloc(length);
      },
      onFrame: (type, requestId, body) => frames.push({ type, requestId, body: Buffer.from(body) }),
    },
    MAX_FRAME_BODY,
  );
  return { decoder, frames, allocations: () => allocations };
}

describe("frame decoder", () => {
  it("reassembles frames split at every possible point", () => {
    const stream = Buffer.concat([
      frame(16, 1, Buffer.from("hello")),
      frame(17, 2, Buffer.alloc(0)),
      frame(36, 3, pseudoRandomBytes(LARGE_BODY_THRESHOLD + 5, "large body")),
    ]);
    for (const step of [1, 2, 7, 9, 10, 4096, stream.length]) {
      const { decoder, frames, allocations } = collectingDecoder();
      for (let at = 0; at < stream.length; at += step) decoder.push(stream.subarray(at, at + step));
      assert.equal(frames.length, 3, `step ${step}`);
      assert.deepEqual(
        frames.map((f) => [f.type, f.requestId, f.body.length]),
        [
          [16, 1, 5],
          [17, 2, 0],
          [36, 3, LARGE_BODY_THRESHOLD + 5],
        ],
      );
      assert.deepEqual(frames[2]?.body, stream.subarray(stream.length - LARGE_BODY_THRESHOLD - 5));
      assert.equal(allocations(), 1, "only the large body goes to the sink's allocator");
      assert.ok(decoder.idle);
    }
  });

  it("names the rest of a body for reads to land in, and takes them there", () => {
    const body = pseudoRandomBytes(LARGE_BODY_THRESHOLD * 3, "read in place");
    const stream = Buffer.concat([frame(36, 1, body), frame(17, 2, Buffer.alloc(0))]);
    const { decoder, frames } = collectingDecoder();
    assert.equal(decoder.bodyRemainder(), undefined, "between frames, reads land anywhere");
    decoder.push(stream.subarray(0, FRAME_HEADER_SIZE + 100));
    let at = FRAME_HEADER_SIZE + 100;
    for (const size of [5000, 70_000]) {
      const remainder = decoder.bodyRemainder();
      assert.ok(remainder !== undefined && remainder.length === body.length - (at - FRAME_HEADER_SIZE));
      stream.copy(remainder, 0, at, at + size); // what a socket reading into it does
      decoder.push(remainder.subarray(0, size));
      at += size;
    }
    decoder.push(stream.subarray(at)); // the rest of the body and the next frame, as a copy

    assert.deepEqual(
      frames.map((f) => [f.type, f.requestId]),
      [
        [36, 1],
        [17, 2],
      ],
    );
    assert.ok(frames[0]?.body.equals(body));
    assert.equal(decoder.bodyRemainder(), undefined);
  });

  it("reassembles random splits of random frames", (t) => {
    const random = seededRandom(t);
    for (let round = 0; round < 50; round++) {
      const bodies = Array.from({ length: 1 + (round % 7) }, (_, i) =>
        random.bytes((round * 997 + i * 31) % 3000),
      );
      const stream = Buffer.concat(bodies.map((body, i) => frame(20, i + 1, body)));
      const { decoder, frames } = collectingDecoder();
      let at = 0;
      while (at < stream.length) {
        const step = 1 + random.below(600);
        decoder.push(stream.subarray(at, at + step));
        at += step;
      }
      assert.deepEqual(
        frames.map((f) => f.body),
        bodies,
      );
    }
  });

  it("refuses a frame larger than the cap from its header alone", () => {
    const { decoder } = collectingDecoder();
    const header = Buffer.alloc(FRAME_HEADER_SIZE);
    writeFrameHeader(header, 0, 36, 1, MAX_FRAME_BODY + 1);
    assert.throws(
      () => decoder.push(header),
      (err) => isTeleportError(err, ErrorCode.FRAME_TOO_LARGE),
    );
  });

  it("refuses a length field shorter than a header", () => {
    const { decoder } = collectingDecoder();
    const bad = Buffer.alloc(FRAME_HEADER_SIZE);
    bad.writeUInt32LE(2, 0);
    assert.throws(
      () => decoder.push(bad),
      (err) => isTeleportError(err, ErrorCode.PROTOCOL),
    );
  });
});
