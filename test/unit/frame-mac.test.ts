/**
 * The MACs of a plaintext stream's requests as a pure unit: what a relay could do with frames it
 * saw (replay, reorder, change, move to another stream) fails the host's check.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { encodeFrame } from "../../src/engine/connection.js";
import { ErrorCode } from "../../src/errors.js";
import { FrameMac, MAC_BYTES, streamKey } from "../../src/transport/frame-mac.js";
import { FRAME_HEADER_SIZE } from "../../src/wire/frame.js";
import { creditCodec, MessageType } from "../../src/wire/messages.js";

const key = streamKey(randomBytes(16), randomBytes(32));
const binding = randomBytes(32);

function sealedCredits(count: number, mac = new FrameMac(key, binding)): Buffer[] {
  return Array.from({ length: count }, (_, i) =>
    mac.seal(encodeFrame(MessageType.CREDIT, i + 1, creditCodec, { bytes: 1000 + i })),
  );
}

function open(host: FrameMac, sealed: Buffer): Buffer {
  return host.open(sealed[4] ?? 0, sealed.readUInt32LE(5), sealed.subarray(FRAME_HEADER_SIZE));
}

const forged = { code: ErrorCode.AUTH };

test("frames opened in the order sealed give back their bodies; the length covers the MAC", () => {
  const frames = sealedCredits(3);
  const host = new FrameMac(key, binding);
  for (const [i, sealed] of frames.entries()) {
    assert.equal(sealed.readUInt32LE(0), sealed.length - 4);
    const body = open(host, sealed);
    assert.equal(body.length, sealed.length - FRAME_HEADER_SIZE - MAC_BYTES);
    assert.equal(body.readUInt32LE(0), 1000 + i);
  }
});

test("a replayed, reordered or changed frame fails", () => {
  const [first, second] = sealedCredits(2) as [Buffer, Buffer];
  const replayed = new FrameMac(key, binding);
  open(replayed, first);
  assert.throws(() => open(replayed, first), forged);
  assert.throws(() => open(new FrameMac(key, binding), second), forged, "reordered");
  const changed = Buffer.from(first);
  changed[FRAME_HEADER_SIZE] = (changed[FRAME_HEADER_SIZE] ?? 0) ^ 1;
  assert.throws(() => open(new FrameMac(key, binding), changed), forged);
  const retyped = Buffer.from(first);
  retyped[4] = MessageType.CANCEL;
  assert.throws(() => open(new FrameMac(key, binding), retyped), forged);
});

test("frames of one stream fail on another stream, and under another control connection's key", () => {
  const [first] = sealedCredits(1) as [Buffer];
  assert.throws(() => open(new FrameMac(key, randomBytes(32)), first), forged);
  assert.throws(
    () => open(new FrameMac(streamKey(randomBytes(16), randomBytes(32)), binding), first),
    forged,
  );
  assert.throws(() => new FrameMac(key, binding).open(MessageType.CREDIT, 1, Buffer.alloc(3)), forged);
});
