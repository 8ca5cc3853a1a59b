/**
 * The relay's protocol: every message round-trips, the decoder holds no more than its caps and
 * refuses what is not a relay message, a registration proves the key of the certificate it
 * names and nothing else, and links carry their relays.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ErrorCode, isTeleportError, TeleportError } from "../../src/errors.js";
import { TokenBucket } from "../../src/relay/relay-limits.js";
import {
  decodeReflectDatagram,
  decodeRelayMessage,
  encodeReflectDatagram,
  encodeRelayFrame,
  encodeRelayMessage,
  MAX_RELAY_BACKLOG_BYTES,
  MAX_RELAY_FRAME_BYTES,
  parseRelayAddress,
  RefusalReason,
  RelayFrameDecoder,
  type RelayMessage,
  RelayType,
  signRegistration,
  verifyRegistration,
} from "../../src/relay/relay-protocol.js";
import { loadOrCreateIdentity } from "../../src/transport/identity.js";
import { formatLink, MAX_LINK_RELAYS, parseLink } from "../../src/transport/link.js";
import { tempDir } from "../helpers/context.js";

const SAMPLES: RelayMessage[] = [
  { type: RelayType.HELLO, version: 1, nonce: randomBytes(32) },
  { type: RelayType.REGISTERED, fingerprint: randomBytes(32) },
  { type: RelayType.INCOMING, token: randomBytes(16), clientAddress: "203.0.113.7", clientPort: 51000 },
  { type: RelayType.SPLICED },
  { type: RelayType.REFUSED, reason: RefusalReason.FULL, detail: "the relay holds 1 hosts" },
  { type: RelayType.REFLECT_NONCE, nonce: randomBytes(16), udpPort: 4000 },
  { type: RelayType.REFLECTED, address: "2001:db8::1", port: 62000 },
  { type: RelayType.PING },
  { type: RelayType.PONG },
  { type: RelayType.REGISTER, certificate: randomBytes(500), signature: randomBytes(72) },
  { type: RelayType.CONNECT, fingerprint: randomBytes(32) },
  { type: RelayType.ACCEPT, token: randomBytes(16) },
  { type: RelayType.REFLECT },
  { type: RelayType.SERVICE, name: "mailbox" },
];

/** Every frame `bytes` holds, cut by a fresh decoder. */
function framesOf(bytes: Buffer): { type: number; body: Buffer }[] {
  const decoder = new RelayFrameDecoder();
  decoder.push(bytes);
  const frames = [];
  for (let frame = decoder.next(); frame !== undefined; frame = decoder.next())
    frames.push({ type: frame.type, body: Buffer.from(frame.body) });
  return frames;
}

describe("relay protocol", () => {
  it("round-trips every message, whole and split at every byte", () => {
    const wire = Buffer.concat(SAMPLES.map(encodeRelayMessage));
    assert.deepEqual(framesOf(wire).map(decodeRelayMessage), SAMPLES);
    for (let cut = 0; cut <= wire.length; cut += 7) {
      const decoder = new RelayFrameDecoder();
      const decoded: RelayMessage[] = [];
      for (const piece of [wire.subarray(0, cut), wire.subarray(cut)]) {
        decoder.push(piece);
        for (let frame = decoder.next(); frame !== undefined; frame = decoder.next())
          decoded.push(decodeRelayMessage(frame));
      }
      assert.deepEqual(decoded, SAMPLES, `cut at ${cut}`);
    }
  });

  it("refuses a frame longer than its cap, and a backlog past its cap, before holding it", () => {
    const decoder = new RelayFrameDecoder();
    const header = Buffer.alloc(3);
    header.writeUInt16LE(MAX_RELAY_FRAME_BYTES + 1, 0);
    decoder.push(header);
    assert.throws(() => decoder.next(), { code: ErrorCode.FRAME_TOO_LARGE });
    assert.throws(() => new RelayFrameDecoder().push(Buffer.alloc(MAX_RELAY_BACKLOG_BYTES + 1)), {
      code: ErrorCode.FRAME_TOO_LARGE,
    });
    assert.throws(() => encodeRelayFrame(0x40, Buffer.alloc(MAX_RELAY_FRAME_BYTES)), {
      code: ErrorCode.FRAME_TOO_LARGE,
    });
  });

  it("refuses unknown types, short bodies and fields out of range with PROTOCOL", () => {
    const bad = [
      { type: 0x3f, body: Buffer.alloc(0) },
      { type: RelayType.CONNECT, body: randomBytes(31) },
      { type: RelayType.HELLO, body: Buffer.concat([Buffer.from([0]), randomBytes(32)]) },
      { type: RelayType.SERVICE, body: Buffer.from([3, 0, 0x2e, 0x2e, 0x2f]) }, // "../"
    ];
    for (const frame of bad) assert.throws(() => decodeRelayMessage(frame), { code: ErrorCode.PROTOCOL });
    const refused = encodeRelayMessage({ type: RelayType.REFUSED, reason: RefusalReason.RATE, detail: "" });
    const renamed = Buffer.from(refused.subarray(3));
    renamed.write("zate", 2);
    assert.throws(() => decodeRelayMessage({ type: RelayType.REFUSED, body: renamed }), {
      code: ErrorCode.PROTOCOL,
    });
  });

  it("decodes random bytes into messages or a TeleportError, never anything else", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        try {
          for (const frame of framesOf(Buffer.from(bytes))) decodeRelayMessage(frame);
        } catch (err) {
          assert.ok(err instanceof TeleportError, String(err));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("a registration proves the certificate's key over this nonce only", async (t) => {
    const host = await loadOrCreateIdentity(await tempDir(t, "relay-proto-a"));
    const other = await loadOrCreateIdentity(await tempDir(t, "relay-proto-b"));
    const nonce = randomBytes(32);
    const register = signRegistration(host, nonce);
    assert.deepEqual(verifyRegistration(register, nonce), host.fingerprint);
    assert.equal(verifyRegistration(register, randomBytes(32)), undefined, "another nonce");
    const borrowed = { ...register, signature: signRegistration(other, nonce).signature };
    assert.equal(verifyRegistration(borrowed, nonce), undefined, "someone else's key");
    assert.equal(verifyRegistration({ ...register, certificate: randomBytes(300) }, nonce), undefined);
  });

  it("reflect datagrams carry exactly a nonce", () => {
    const nonce = randomBytes(16);
    assert.deepEqual(decodeReflectDatagram(encodeReflectDatagram(nonce)), nonce);
    assert.equal(
      decodeReflectDatagram(Buffer.concat([encodeReflectDatagram(nonce), Buffer.alloc(1)])),
      undefined,
    );
    assert.equal(decodeReflectDatagram(Buffer.alloc(20)), undefined);
  });

  it("parses relay addresses, IPv6 in brackets, and refuses the rest", () => {
    assert.deepEqual(parseRelayAddress("relay.example.org:4433"), { host: "relay.example.org", port: 4433 });
    assert.deepEqual(parseRelayAddress("[2001:db8::1]:9"), { host: "2001:db8::1", port: 9 });
    for (const text of ["relay", "relay:0", "relay:70000", "a b:1", "[::1:1", ":1"])
      assert.throws(() => parseRelayAddress(text), { code: ErrorCode.USAGE }, text);
  });

  it("links carry their relays, at most MAX_LINK_RELAYS, each HOST:PORT", () => {
    const link = {
      host: "10.0.0.2",
      port: 4242,
      fingerprint: randomBytes(32),
      secret: randomBytes(16),
      relays: [
        { host: "198.51.100.1", port: 7000 },
        { host: "::1", port: 7001 },
      ],
    };
    assert.deepEqual(parseLink(formatLink(link)), link);
    const many = {
      ...link,
      relays: Array.from({ length: MAX_LINK_RELAYS + 1 }, (_, i) => ({ host: "r", port: i + 1 })),
    };
    assert.throws(
      () => parseLink(formatLink(many)),
      (err) => isTeleportError(err, ErrorCode.BAD_LINK),
    );
    assert.throws(
      () => parseLink(`${formatLink({ ...link, relays: [] })}&relay=nowhere`),
      (err) => isTeleportError(err, ErrorCode.BAD_LINK),
    );
  });

  it("a token bucket lets a burst through, then makes the rest wait at its rate", () => {
    const bucket = new TokenBucket(1000, 2000, 0);
    assert.equal(bucket.take(2000, 0), 0);
    assert.equal(bucket.take(500, 0), 500);
    assert.equal(bucket.take(0, 500), 0);
    assert.equal(bucket.tryTake(1, 500), false);
    assert.equal(bucket.tryTake(1, 1500), true);
  });
});
