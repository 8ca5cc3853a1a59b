/**
 * The message registry (wire/registry.ts) and the protocol's catalogue of messages: each type
 * defined once, each handler registered once and only on the side the message is sent to, and
 * the flags that decide what a plaintext stream carries and which bodies go to pooled buffers.
 */
import assert from "node:assert/strict";
import { Duplex } from "node:stream";
import { describe, it } from "node:test";
import { type PendingRequest, RequestChannel } from "../../src/client/channel.js";
import { BufferPool } from "../../src/engine/buffer-pool.js";
import { ErrorCode, TeleportError } from "../../src/errors.js";
import { encodeWithHeadroom, uint32 } from "../../src/wire/codec.js";
import { FRAME_HEADER_SIZE, LARGE_BODY_THRESHOLD, writeFrameHeader } from "../../src/wire/frame.js";
import {
  chunkDataCodec,
  getChunksRequestCodec,
  Messages,
  MessageType,
  pingCodec,
  protocol,
  rangeDataCodec,
} from "../../src/wire/messages.js";
import { MessageHandlers, MessageRegistry } from "../../src/wire/registry.js";

describe("message registry", () => {
  it("refuses a message type defined twice", () => {
    const registry = new MessageRegistry({ PING: 4 });
    registry.define(4, pingCodec, { from: "client" });
    assert.throws(() => registry.define(4, uint32, { from: "host" }), /message type 4 is already PING/);
    assert.throws(() => registry.define(256, uint32, { from: "host" }), /not one byte/);
  });

  it("refuses a handler registered twice, or on the side that sends the message", () => {
    const handlers = new MessageHandlers<void>("host").on(Messages.PING, () => {});
    assert.throws(() => handlers.on(Messages.PING, () => {}), /PING has a handler already/);
    assert.throws(() => handlers.on(Messages.WELCOME, () => {}), /WELCOME is sent by the host, not to it/);
    // ERROR goes both ways: either side may handle it.
    new MessageHandlers<void>("client").on(Messages.ERROR, () => {});
    handlers.on(Messages.ERROR, () => {});
  });

  it("hands each handler its message's decoded body, and reports types it has no handler for", () => {
    const seen: { id: number; sentAt: number }[] = [];
    const handlers = new MessageHandlers<typeof seen>("host").on(Messages.PING, (into, id, ping) =>
      into.push({ id, sentAt: ping.sentAt }),
    );
    const body = encodeWithHeadroom(pingCodec, { sentAt: 1234.5 }, 0);
    assert.equal(handlers.dispatch(seen, MessageType.PING, 7, body), true);
    assert.deepEqual(seen, [{ id: 7, sentAt: 1234.5 }]);
    assert.equal(handlers.dispatch(seen, MessageType.LIST, 8, body), false);
    assert.equal(handlers.dispatch(seen, 200, 9, body), false);
    assert.equal(seen.length, 1);
    assert.throws(
      () => handlers.dispatch(seen, MessageType.PING, 10, Buffer.alloc(3)),
      (err: unknown) => err instanceof TeleportError && err.code === ErrorCode.PROTOCOL,
    );
  });
});

describe("the protocol's messages", () => {
  const types = Object.values(MessageType);

  it("describe every message type once, under its own name", () => {
    for (const [name, type] of Object.entries(MessageType)) {
      assert.equal(protocol.get(type)?.name, name);
      assert.equal(Messages[name as keyof typeof Messages].type, type);
    }
    assert.equal(Object.keys(Messages).length, types.length);
  });

  it("let a plaintext stream carry only the handshake, flow control and chunks", () => {
    const plaintext = types.filter((type) => protocol.allowsPlaintext(type)).sort((a, b) => a - b);
    const { HELLO, WELCOME, ERROR, PING, PONG, CANCEL, CREDIT, END, GET_CHUNKS, CHUNK_DATA, CHUNK_ZSTD } =
      MessageType;
    const expected = [
      HELLO,
      WELCOME,
      ERROR,
      PING,
      PONG,
      CANCEL,
      CREDIT,
      END,
      GET_CHUNKS,
      CHUNK_DATA,
      CHUNK_ZSTD,
    ];
    assert.deepEqual(plaintext, expected);
    for (const refused of [
      MessageType.LIST,
      MessageType.STAT,
      MessageType.MANIFEST,
      MessageType.READ_RANGE,
      MessageType.DELTA,
    ])
      assert.equal(protocol.allowsPlaintext(refused), false);
    assert.equal(protocol.allowsPlaintext(250), false, "an unknown type is not plaintext");
  });

  it("mark as bulk only what the host sends in large bodies", () => {
    const bulk = types.filter((type) => protocol.isBulk(type)).sort((a, b) => a - b);
    assert.deepEqual(bulk, [
      MessageType.CHUNKS,
      MessageType.CHUNK_DATA,
      MessageType.RANGE_DATA,
      MessageType.CHUNK_ZSTD,
      MessageType.DELTA_DATA,
    ]);
    for (const type of bulk) assert.equal(protocol.get(type)?.from, "host");
  });

  it("describe the data frames written in place: hash or header, then the bytes to the end", () => {
    const hash = Buffer.alloc(32, 7);
    const data = Buffer.from("chunk bytes");
    const chunk = encodeWithHeadroom(chunkDataCodec, { hash, data }, 0);
    assert.equal(chunk.length, 32 + data.length);
    assert.deepEqual(Messages.CHUNK_DATA.codec.decode({ start: 0, end: chunk.length, buffer: chunk }), {
      hash,
      data,
    });
    const range = encodeWithHeadroom(rangeDataCodec, { offset: 5, hash, data }, 0);
    assert.deepEqual(range.subarray(40), data);
  });
});

describe("a client's channel", () => {
  it("assembles large bodies of bulk messages in pooled buffers, and refuses large bodies of others", async () => {
    const { client, host } = duplexPair();
    const pool = new BufferPool();
    const channel = new RequestChannel(client, pool, { onConnectionFrame: () => {}, onClose: () => {} });
    const received: { type: number; pooled: boolean }[] = [];
    let failure: TeleportError | undefined;
    let wake = () => {};
    const until = async (done: () => boolean) => {
      while (!done()) await new Promise<void>((resolve) => (wake = resolve));
    };
    const pending: PendingRequest = {
      credit: 1024 * 1024,
      onFrame: (type, body) => {
        received.push({ type, pooled: pool.inUseBytes >= body.length });
        wake();
        return false;
      },
      onEnd: () => {},
      onError: (error) => {
        failure = error;
        wake();
      },
    };
    const { requestId } = channel.open(
      MessageType.GET_CHUNKS,
      getChunksRequestCodec,
      { chunks: [] },
      pending,
    );
    const large = LARGE_BODY_THRESHOLD + 100;
    host.push(frameOf(MessageType.CHUNK_DATA, requestId, large));
    host.push(frameOf(MessageType.CHUNKS, requestId, large));
    await until(() => received.length === 2);
    assert.deepEqual(received, [
      { type: MessageType.CHUNK_DATA, pooled: true },
      { type: MessageType.CHUNKS, pooled: true },
    ]);
    assert.equal(pool.inUseBytes, 0, "each body went back to the pool");
    host.push(frameOf(MessageType.ENTRIES, requestId, large));
    await until(() => failure !== undefined);
    assert.equal(received.length, 2);
    assert.equal(failure?.code, ErrorCode.PROTOCOL);
    assert.match(
      failure?.message ?? "",
      new RegExp(`unexpected ${large}-byte frame of type ${MessageType.ENTRIES}`),
    );
  });
});

function frameOf(type: number, requestId: number, bodyLength: number): Buffer {
  const frame = Buffer.alloc(FRAME_HEADER_SIZE + bodyLength);
  writeFrameHeader(frame, 0, type, requestId, bodyLength);
  return frame;
}

/** `client`'s reads are what is pushed into `host`; what the client writes is dropped. */
function duplexPair(): { client: Duplex; host: { push(data: Buffer): void } } {
  const client = new Duplex({
    read() {},
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
  return { client, host: { push: (data) => client.push(data) } };
}
