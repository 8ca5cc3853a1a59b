/**
 * PUNCH and PUNCH_READY bodies (wire/punch-messages.ts) and the host's checks of what a PUNCH
 * names (reach/host-punch.ts): bounded, and refused when they are not an IPv4 endpoint.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode, TeleportError } from "../../src/errors.js";
import { HostPuncher } from "../../src/reach/host-punch.js";
import { decodeMessage, encodeWithHeadroom } from "../../src/wire/codec.js";
import { Messages, MessageType } from "../../src/wire/messages.js";
import { punchReadyCodec, punchRequestCodec } from "../../src/wire/punch-messages.js";

const request = {
  client: { address: "198.51.100.7", port: 40213 },
  relayHost: "relay.example",
  relayPort: 7000,
};

describe("punch messages", () => {
  it("PUNCH and PUNCH_READY round-trip, registered as 0x80 and 0x81", () => {
    assert.deepEqual(
      decodeMessage(punchRequestCodec, encodeWithHeadroom(punchRequestCodec, request, 0)),
      request,
    );
    const ready = { host: { address: "203.0.113.9", port: 5000 } };
    assert.deepEqual(decodeMessage(punchReadyCodec, encodeWithHeadroom(punchReadyCodec, ready, 0)), ready);
    assert.equal(Messages.PUNCH.type, MessageType.PUNCH);
    assert.equal(MessageType.PUNCH, 0x80);
    assert.equal(Messages.PUNCH_READY.from, "host");
  });

  it("an address over its bound, or a truncated body, is refused", () => {
    const long = { ...request, client: { address: "1".repeat(65), port: 1 } };
    assert.throws(() => encodeWithHeadroom(punchRequestCodec, long, 0));
    const body = encodeWithHeadroom(punchRequestCodec, request, 0);
    for (let cut = 0; cut < body.length; cut++)
      assert.throws(() => decodeMessage(punchRequestCodec, body.subarray(0, cut)), `cut at ${cut}`);
  });

  it("the host refuses a PUNCH that names no IPv4 endpoint, before any packet leaves", async () => {
    const puncher = new HostPuncher(9);
    for (const bad of [
      { ...request, client: { address: "example.com", port: 1 } },
      { ...request, client: { address: "::1", port: 1 } },
      { ...request, client: { address: "198.51.100.7", port: 0 } },
      { ...request, relayPort: 0 },
    ]) {
      await assert.rejects(
        puncher.answer(bad),
        (err: unknown) => err instanceof TeleportError && err.code === ErrorCode.PROTOCOL,
      );
    }
  });
});
