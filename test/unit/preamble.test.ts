/** The plaintext and QUIC preambles (src/transport/preamble.ts): exact sizes, and what a decoder refuses. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ErrorCode } from "../../src/errors.js";
import {
  decodePreamble,
  ENDORSEMENT_HEAD_BYTES,
  encodePreamble,
  endorsementLength,
  hostEndorsement,
  NONCE_BYTES,
  plainClientPreamble,
  plainHostPreamble,
  preambleBytes,
  quicClientPreamble,
} from "../../src/transport/preamble.js";

const nonce = Buffer.alloc(NONCE_BYTES, 7);

test("the plaintext preambles are as on the wire before the codecs: magic and nonce, then a nonce", () => {
  const client = encodePreamble(plainClientPreamble, { nonce });
  assert.deepEqual(client, Buffer.concat([Buffer.from("teleport-plain/1"), nonce]));
  assert.equal(preambleBytes(plainClientPreamble), client.length);
  assert.deepEqual(decodePreamble(plainClientPreamble, client).nonce, nonce);
  assert.deepEqual(encodePreamble(plainHostPreamble, { nonce }), nonce);
  assert.equal(encodePreamble(quicClientPreamble, { nonce }).subarray(0, 4).toString(), "TPQ1");
});

test("a preamble with another magic, cut short or running long is refused", () => {
  const client = encodePreamble(plainClientPreamble, { nonce });
  const wrongMagic = Buffer.from(client);
  wrongMagic[0] = 0x16; // a TLS ClientHello's first byte
  for (const bytes of [wrongMagic, client.subarray(0, client.length - 1), Buffer.concat([client, nonce])]) {
    assert.throws(() => decodePreamble(plainClientPreamble, bytes), { code: ErrorCode.PROTOCOL });
  }
  assert.throws(() => decodePreamble(quicClientPreamble, client), { code: ErrorCode.PROTOCOL });
});

test("the host's QUIC endorsement: both u16 lengths first, its length known from its head", () => {
  const endorsement = { certificate: Buffer.alloc(300, 1), signature: Buffer.alloc(70, 2), nonce };
  const bytes = encodePreamble(hostEndorsement, endorsement);
  assert.equal(bytes.length, 4 + 2 + 2 + 300 + 70 + NONCE_BYTES);
  assert.equal(bytes.readUInt16LE(4), 300);
  assert.equal(bytes.readUInt16LE(6), 70);
  assert.equal(endorsementLength(bytes.subarray(0, ENDORSEMENT_HEAD_BYTES)), bytes.length);
  assert.deepEqual(decodePreamble(hostEndorsement, bytes), endorsement);
  const oversized = Buffer.from(bytes);
  oversized.writeUInt16LE(8193, 4);
  assert.throws(() => endorsementLength(oversized.subarray(0, ENDORSEMENT_HEAD_BYTES)), {
    code: ErrorCode.PROTOCOL,
  });
});
