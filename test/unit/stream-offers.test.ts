/**
 * The host's tokens for data streams its pushers dial (push/offered-streams.ts): single use,
 * bound to the upload's client, expiring, bounded; a stream for a wait cancelled is taken and
 * closed, not refused.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import { ErrorCode } from "../../src/errors.js";
import { StreamOffers } from "../../src/push/offered-streams.js";
import type { TransportStream } from "../../src/transport/transport.js";

const PUSHER = "aa".repeat(16);

/** A stream as far as the offers see one: it can be closed, and says when it is. */
function fakeStream(): TransportStream & { destroyed: boolean } {
  const socket = Object.assign(new EventEmitter(), {
    destroy() {
      fake.destroyed = true;
      socket.emit("close");
    },
  });
  const fake = { stream: socket, destroyed: false } as unknown as TransportStream & { destroyed: boolean };
  return fake;
}

describe("StreamOffers", () => {
  it("hands the stream that gives a token back to the pull that wanted it, once", async () => {
    const offers = new StreamOffers();
    const { token, value: stream } = offers.want(PUSHER);
    const given = fakeStream();
    const ended = offers.take(token, PUSHER).receive(given, Buffer.alloc(0));
    assert.equal(await stream, given);
    assert.throws(() => offers.take(token, PUSHER), { code: ErrorCode.AUTH });
    given.stream.destroy();
    await ended;
    assert.equal(offers.waiting, 0);
  });

  it("refuses a token it never gave, and one given for another client without using it up", async () => {
    const offers = new StreamOffers();
    const { token, value: stream } = offers.want(PUSHER);
    assert.throws(() => offers.take(Buffer.alloc(token.length, 7), PUSHER), { code: ErrorCode.AUTH });
    assert.throws(() => offers.take(token, "bb".repeat(16)), { code: ErrorCode.AUTH });
    assert.throws(() => offers.take(token, undefined), { code: ErrorCode.AUTH });
    const given = fakeStream();
    void offers.take(token, PUSHER).receive(given, Buffer.alloc(0));
    assert.equal(await stream, given);
  });

  it("forgets a token once it expires: the wait fails, and the token is refused", async () => {
    const offers = new StreamOffers(20);
    const { token, value: stream } = offers.want(PUSHER);
    // The expiry timer does not hold a host's process open: this does, until it has fired.
    const keepAlive = setInterval(() => {}, 1000);
    await assert.rejects(stream, { code: ErrorCode.TIMEOUT }).finally(() => clearInterval(keepAlive));
    assert.throws(() => offers.take(token, PUSHER), { code: ErrorCode.AUTH });
    assert.equal(offers.waiting, 0);
  });

  it("closes a stream that comes for a wait the pull cancelled", async () => {
    const offers = new StreamOffers();
    const cancel = new AbortController();
    const { token, value: stream } = offers.want(PUSHER, cancel.signal);
    cancel.abort();
    await assert.rejects(stream, { code: ErrorCode.CANCELLED });
    const late = fakeStream();
    await offers.take(token, PUSHER).receive(late, Buffer.alloc(0));
    assert.ok(late.destroyed, "the late stream was closed");
  });

  it("bounds the streams one upload may be waiting for", () => {
    const offers = new StreamOffers();
    const cancel = new AbortController();
    const waits: Promise<TransportStream>[] = [];
    assert.throws(
      () => {
        for (let i = 0; i < 1000; i++) waits.push(offers.want(PUSHER, cancel.signal).value);
      },
      { code: ErrorCode.HOST_BUSY },
    );
    assert.ok(waits.length >= 8 && waits.length < 1000, `${waits.length} waits taken`);
    // Another upload still gets its own.
    waits.push(offers.want("bb".repeat(16), cancel.signal).value);
    for (const wait of waits) wait.catch(() => {});
    cancel.abort();
  });
});
