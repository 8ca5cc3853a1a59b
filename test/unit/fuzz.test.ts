/**
 * Property-based fuzzing (fast-check) of everything that decodes bytes from the network: every
 * message codec and the frame decoder. Whatever arrives, the outcome is a value or a
 * TeleportError: never another exception, a hang, or an allocation beyond the caps.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ErrorCode, isTeleportError } from "../../src/errors.js";
import { type Codec, decodeMessage, encodeWithHeadroom } from "../../src/wire/codec.js";
import * as deltaMessages from "../../src/wire/delta-messages.js";
import {
  FRAME_HEADER_SIZE,
  FrameDecoder,
  LARGE_BODY_THRESHOLD,
  writeFrameHeader,
} from "../../src/wire/frame.js";
import * as messages from "../../src/wire/messages.js";

const CODECS: [string, Codec<unknown>][] = Object.entries({ ...messages, ...deltaMessages })
  .filter(([name]) => name.endsWith("Codec"))
  .map(([name, codec]) => [name, codec as Codec<unknown>]);

function decodesOrRefuses(codec: Codec<unknown>, bytes: Uint8Array, name = "entriesCodec"): void {
  try {
    decodeMessage(codec, Buffer.from(bytes));
  } catch (err) {
    assert.ok(isTeleportError(err, ErrorCode.PROTOCOL), `${name} threw ${String(err)}`);
  }
}

const arbitraryPath = fc.string({ unit: "grapheme", maxLength: 60 });
const arbitraryHash = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => Buffer.from(bytes));
const arbitraryEntry = fc.record(
  {
    kind: fc.constantFrom(messages.EntryKind.FILE, messages.EntryKind.DIRECTORY, messages.EntryKind.SYMLINK),
    path: arbitraryPath,
    size: fc.maxSafeNat(),
    mode: fc.nat({ max: 0o7777 }),
    mtimeMs: fc.double({ noNaN: true, noDefaultInfinity: true }), // decoders refuse non-finite numbers
    linkTarget: arbitraryPath,
  },
  { noNullPrototype: true },
);
const arbitraryChunkRequest = fc.record(
  {
    hash: arbitraryHash,
    size: fc.nat({ max: 2 ** 32 - 1 }),
    path: arbitraryPath,
    offset: fc.maxSafeNat(),
  },
  { noNullPrototype: true },
);

describe("fuzzed message decoding", () => {
  it(`refuses or decodes arbitrary bytes, for each of the ${CODECS.length} codecs`, () => {
    for (const [name, codec] of CODECS) {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => decodesOrRefuses(codec, bytes, name)),
        { numRuns: 300 },
      );
    }
  });

  it("round-trips arbitrary entries and chunk requests", () => {
    fc.assert(
      fc.property(fc.array(arbitraryEntry, { maxLength: 20 }), (entries) => {
        const encoded = encodeWithHeadroom(messages.entriesCodec, { entries }, 0);
        assert.deepEqual(decodeMessage(messages.entriesCodec, encoded).entries, entries);
      }),
    );
    fc.assert(
      fc.property(fc.array(arbitraryChunkRequest, { maxLength: 20 }), (chunks) => {
        const encoded = encodeWithHeadroom(messages.getChunksRequestCodec, { chunks }, 0);
        assert.deepEqual(decodeMessage(messages.getChunksRequestCodec, encoded).chunks, chunks);
      }),
    );
  });

  it("refuses or decodes valid messages with bytes flipped, cut or added", () => {
    const mutation = fc.record({
      at: fc.nat(),
      xor: fc.integer({ min: 1, max: 255 }),
      cut: fc.nat(),
      extra: fc.uint8Array({ maxLength: 16 }),
    });
    fc.assert(
      fc.property(
        fc.array(arbitraryEntry, { maxLength: 8 }),
        mutation,
        (entries, { at, xor, cut, extra }) => {
          const encoded = Buffer.from(encodeWithHeadroom(messages.entriesCodec, { entries }, 0));
          const flipped = at % Math.max(encoded.length, 1);
          if (encoded.length > 0) encoded[flipped] = (encoded[flipped] as number) ^ xor;
          const mutated = Buffer.concat([
            encoded.subarray(0, encoded.length - (cut % (encoded.length + 1))),
            extra,
          ]);
          decodesOrRefuses(messages.entriesCodec, mutated);
        },
      ),
    );
  });
});

describe("fuzzed frame decoding", () => {
  // Above the size from which bodies go to the sink's allocator, so the cap is exercised there.
  const MAX_BODY = 4 * LARGE_BODY_THRESHOLD;

  function decoder() {
    const frames: { type: number; requestId: number; body: Buffer }[] = [];
    const allocations: number[] = [];
    const sink = {
      allocateBody: (_type: number, _id: number, length: number) => {
        allocations.push(length);
        return Buffer.alloc(length);
      },
      onFrame: (type: number, requestId: number, body: Buffer) =>
        frames.push({ type, requestId, body: Buffer.from(body) }),
    };
    return { decoder: new FrameDecoder(sink, MAX_BODY), frames, allocations };
  }

  const arbitraryFrame = fc.record(
    {
      type: fc.nat({ max: 255 }),
      requestId: fc.nat({ max: 2 ** 32 - 1 }),
      body: fc.uint8Array({ maxLength: 3000 }).map((bytes) => Buffer.from(bytes)),
    },
    { noNullPrototype: true },
  );

  it("reassembles any frames, split anywhere", () => {
    fc.assert(
      fc.property(
        fc.array(arbitraryFrame, { maxLength: 10 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (sent, cuts) => {
          const wire = Buffer.concat(
            sent.map(({ type, requestId, body }) => {
              const frame = Buffer.alloc(FRAME_HEADER_SIZE + body.length);
              writeFrameHeader(frame, 0, type, requestId, body.length);
              body.copy(frame, FRAME_HEADER_SIZE);
              return frame;
            }),
          );
          const points = [...new Set(cuts.map((cut) => cut % (wire.length + 1)))].sort((a, b) => a - b);
          const { decoder: frames, frames: received } = decoder();
          let from = 0;
          for (const point of [...points, wire.length]) {
            frames.push(wire.subarray(from, point));
            from = point;
          }
          assert.deepEqual(received, sent);
          assert.ok(frames.idle);
        },
      ),
    );
  });

  /** A frame header claiming a length around the allocator's threshold and the cap, or junk. */
  const arbitraryHeader = fc
    .record(
      {
        type: fc.nat({ max: 255 }),
        bodyLength: fc.oneof(
          fc.integer({ min: LARGE_BODY_THRESHOLD - 2, max: MAX_BODY + 2 }),
          fc.integer({ min: 0, max: 2 * MAX_BODY }),
        ),
      },
      { noNullPrototype: true },
    )
    .map(({ type, bodyLength }) => {
      const header = Buffer.alloc(FRAME_HEADER_SIZE);
      writeFrameHeader(header, 0, type, 1, bodyLength);
      return new Uint8Array(header);
    });

  it("takes arbitrary byte streams to frames or a TeleportError, never allocating past the cap", () => {
    let allocatingRuns = 0;
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            arbitraryHeader,
            fc.uint8Array({ maxLength: 512 }),
            fc.uint8Array({ minLength: 60_000, maxLength: 70_000 }),
          ),
          {
            maxLength: 16,
          },
        ),
        (pieces) => {
          const { decoder: frames, allocations } = decoder();
          let pushed = 0;
          try {
            for (const piece of pieces) {
              pushed += piece.length;
              frames.push(Buffer.from(piece));
            }
          } catch (err) {
            assert.ok(isTeleportError(err), `threw ${String(err)}`);
            assert.ok(
              err.code === ErrorCode.FRAME_TOO_LARGE || err.code === ErrorCode.PROTOCOL,
              `unexpected code ${err.code}`,
            );
          }
          if (allocations.length > 0) allocatingRuns++;
          for (const length of allocations) assert.ok(length <= MAX_BODY, `allocated a ${length}-byte body`);
          // Every body but the one being filled arrived in full: a peer gets at most one cap ahead.
          const allocated = allocations.reduce((sum, length) => sum + length, 0);
          assert.ok(allocated <= pushed + MAX_BODY, `allocated ${allocated} bytes for ${pushed} received`);
        },
      ),
      { numRuns: 200 },
    );
    assert.ok(allocatingRuns > 0, "no run reached the sink's allocator");
  });

  it("refuses a header claiming any length past the cap before allocating a byte", () => {
    fc.assert(
      fc.property(fc.integer({ min: MAX_BODY + 1, max: 2 ** 32 - 1 - FRAME_HEADER_SIZE }), (length) => {
        const header = Buffer.alloc(FRAME_HEADER_SIZE);
        writeFrameHeader(header, 0, messages.MessageType.CHUNK_DATA, 1, length);
        const { decoder: frames, allocations } = decoder();
        assert.throws(
          () => frames.push(header),
          (err: unknown) => isTeleportError(err, ErrorCode.FRAME_TOO_LARGE),
        );
        assert.deepEqual(allocations, []);
      }),
    );
  });
});
