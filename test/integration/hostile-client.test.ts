/**
 * A host facing hostile clients: random frames after authenticating (fuzzed with fast-check),
 * connections that never finish their handshake, guessed secrets, absurd requests. Each is
 * refused and bounded, and the host goes on serving everyone else.
 */
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import type { TLSSocket } from "node:tls";
import fc from "fast-check";
import { TeleportClient } from "../../src/client/client.js";
import { pull } from "../../src/client/pull.js";
import { encodeFrame } from "../../src/engine/connection.js";
import { ErrorCode, TeleportError } from "../../src/errors.js";
import type { Host } from "../../src/host/host.js";
import { parseLink, type ShareLink } from "../../src/transport/link.js";
import { tcpTransport } from "../../src/transport/tcp.js";
import { authProof, type TransportStream } from "../../src/transport/transport.js";
import { type Codec, decodeMessage } from "../../src/wire/codec.js";
import { FRAME_HEADER_SIZE, FrameDecoder, writeFrameHeader } from "../../src/wire/frame.js";
import {
  emptyCodec,
  errorCodec,
  getChunksRequestCodec,
  helloCodec,
  MessageType,
  PROTOCOL_MAGIC,
  PROTOCOL_VERSION,
  pingCodec,
  readRangeRequestCodec,
} from "../../src/wire/messages.js";
import { NO_HANG_TIMEOUT_MS, onCleanup, waitFor } from "../helpers/context.js";
import { hostInProcess, makeShare } from "../helpers/share.js";
import { compareTrees, MiB, pseudoRandomBytes } from "../helpers/tree.js";

interface Fixture {
  base: string;
  share: string;
  host: Host;
  link: ShareLink;
}

async function fixture(
  t: TestContext,
  options: { handshakeTimeoutMs?: number; authLockoutMs?: number; idleTimeoutMs?: number } = {},
) {
  const { base, share } = await makeShare(t, "hostile-client");
  await mkdir(join(share, "sub"), { recursive: true });
  await writeFile(join(share, "a.txt"), "inside the share\n");
  await writeFile(join(share, "sub", "large.bin"), pseudoRandomBytes(3 * MiB, "hostile-client"));
  const host = await hostInProcess(t, {
    base,
    share,
    ...options,
  });
  return { base, share, host, link: parseLink(host.url) } satisfies Fixture;
}

/** A pull of the whole share that must come out whole. */
async function assertServesAPull(
  { base, share, host }: Fixture,
  label: string,
  options: { idleTimeoutMs?: number } = {},
): Promise<void> {
  const client = await TeleportClient.connect(host.url, options);
  try {
    const dest = join(base, `dest-${label}`);
    await pull(client, { dest });
    await compareTrees(share, dest);
  } finally {
    await client.close();
  }
}

/** An authenticated connection that sends whatever frames it is given. */
class RawSession {
  readonly transport: TransportStream;
  readonly socket: TLSSocket;
  readonly frames: { type: number; requestId: number; body: Buffer }[] = [];
  readonly closed: Promise<void>;

  private constructor(transport: TransportStream) {
    this.transport = transport;
    const socket = transport.stream as TLSSocket;
    this.socket = socket;
    const decoder = new FrameDecoder(
      {
        allocateBody: (_type, _id, length) => Buffer.alloc(length),
        onFrame: (type, requestId, body) => this.frames.push({ type, requestId, body: Buffer.from(body) }),
      },
      8 * MiB,
    );
    socket.on("data", (data: Buffer) => decoder.push(data));
    socket.on("error", () => {});
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
  }

  static async open(link: ShareLink, secret = link.secret): Promise<RawSession> {
    const session = new RawSession(await tcpTransport.dial(link));
    session.socket.write(
      encodeFrame(MessageType.HELLO, 0, helloCodec, {
        magic: PROTOCOL_MAGIC,
        minVersion: PROTOCOL_VERSION,
        maxVersion: PROTOCOL_VERSION,
        features: 0,
        authProof: authProof(session.transport, secret),
        clientName: "hostile",
      }),
    );
    await waitFor(() => session.frames.length > 0 || session.socket.destroyed, {
      what: "an answer to HELLO",
    });
    return session;
  }

  sendMessage<T>(type: number, requestId: number, codec: Codec<T>, value: T): void {
    this.socket.write(encodeFrame(type, requestId, codec, value));
  }

  send(type: number, requestId: number, body: Uint8Array): void {
    const frame = Buffer.alloc(FRAME_HEADER_SIZE + body.length);
    writeFrameHeader(frame, 0, type, requestId, body.length);
    frame.set(body, FRAME_HEADER_SIZE);
    this.socket.write(frame);
  }

  errors(): string[] {
    return this.frames
      .filter((frame) => frame.type === MessageType.ERROR)
      .map((frame) => decodeMessage(errorCodec, frame.body).code);
  }
}

test("random frames from an authenticated client get errors or a closed connection, never a crash", async (t) => {
  const context = await fixture(t);
  const types = fc.oneof(fc.constantFrom(...Object.values(MessageType)), fc.nat({ max: 255 }));
  const frame = fc.record({
    type: types,
    requestId: fc.oneof(fc.nat({ max: 4 }), fc.nat({ max: 2 ** 32 - 1 })),
    body: fc.uint8Array({ maxLength: 2048 }),
  });
  await fc.assert(
    fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 12 }), async (frames) => {
      const session = await RawSession.open(context.link);
      try {
        for (const { type, requestId, body } of frames) session.send(type, requestId, body);
        // A PING last: answered if the host is still talking to us, else the connection is closed.
        session.sendMessage(MessageType.PING, 0, pingCodec, { sentAt: 1 });
        await waitFor(
          () => session.socket.destroyed || session.frames.some((f) => f.type === MessageType.PONG),
          { what: "a PONG or a closed connection", timeoutMs: 5000 },
        );
        for (const code of session.errors()) assert.ok(code.startsWith("TELEPORT_ERR_"), code);
      } finally {
        session.socket.destroy();
      }
    }),
    { numRuns: 60 },
  );
  await assertServesAPull(context, "after-fuzz");
});

test("connections that never finish TLS or never say HELLO are dropped, and others are served meanwhile", {
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const context = await fixture(t, { handshakeTimeoutMs: 1000 });
  const silentTcp: Socket[] = [];
  for (let i = 0; i < 40; i++) {
    const socket = connect(context.link.port, "127.0.0.1");
    socket.on("error", () => {});
    silentTcp.push(socket);
  }
  const silentTls: TLSSocket[] = [];
  for (let i = 0; i < 10; i++) silentTls.push((await tcpTransport.dial(context.link)).stream as TLSSocket);
  onCleanup(t, () => {
    for (const socket of [...silentTcp, ...silentTls]) socket.destroy();
  });

  await assertServesAPull(context, "during-slow-loris");
  await waitFor(
    () => [...silentTcp, ...silentTls].every((socket) => socket.destroyed || socket.readableEnded),
    {
      what: "the host to drop the silent connections",
      timeoutMs: 10_000,
    },
  );
});

test("wrong secrets from an address are refused more slowly each time, and the right one is still let in", {
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const context = await fixture(t, { authLockoutMs: 60_000 });
  const wrong = { ...context.link, secret: Buffer.alloc(context.link.secret.length, 7) };
  const refusalMs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    await assert.rejects(TeleportClient.connect(wrong), (err: unknown) => {
      assert.ok(err instanceof TeleportError && err.code === ErrorCode.AUTH, String(err));
      assert.match(err.message, /secret was not accepted/);
      return true;
    });
    refusalMs.push(performance.now() - started);
  }
  // The 5th refusal waits 1 s (test/unit/auth-limiter.test.ts has the policy on its own clock).
  assert.ok((refusalMs[4] ?? 0) >= 900, `the 5th wrong secret was refused after a delay: ${refusalMs}`);
  await assertServesAPull(context, "after-wrong-secrets");
});

test("absurd requests are refused with their error and the connection goes on", async (t) => {
  const context = await fixture(t);
  const session = await RawSession.open(context.link);
  onCleanup(t, () => session.socket.destroy());
  const huge = Number.MAX_SAFE_INTEGER;
  session.sendMessage(MessageType.READ_RANGE, 1, readRangeRequestCodec, {
    credit: 2 ** 32 - 1,
    path: "sub/large.bin",
    offset: huge - 10,
    length: huge,
  });
  const chunk = { hash: Buffer.alloc(32), path: "sub/large.bin", offset: 0 };
  session.sendMessage(MessageType.GET_CHUNKS, 2, getChunksRequestCodec, { chunks: [{ ...chunk, size: 0 }] });
  session.sendMessage(MessageType.GET_CHUNKS, 3, getChunksRequestCodec, {
    chunks: [{ ...chunk, size: 2 ** 32 - 1 }],
  });
  await waitFor(() => session.errors().length >= 3, { what: "an error for each request", timeoutMs: 5000 });
  assert.deepEqual(session.errors().sort(), [ErrorCode.PROTOCOL, ErrorCode.PROTOCOL, ErrorCode.RANGE]);
  assert.ok(!session.socket.destroyed, "request errors leave the connection open");
  await assertServesAPull(context, "after-absurd");
});

test("clients that ask for everything and stop reading hold a bounded share of the host, then are dropped", {
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const context = await fixture(t, { idleTimeoutMs: 3000 });
  const chunks = [0, 1, 2].map((i) => ({
    hash: Buffer.alloc(32),
    path: "sub/large.bin",
    offset: i * MiB,
    size: MiB,
  }));
  const stalled: RawSession[] = [];
  for (let i = 0; i < 10; i++) {
    const session = await RawSession.open(context.link);
    session.socket.pause(); // reads nothing more, but keeps pinging below, so it is not idle
    for (let id = 1; id <= 64; id++)
      session.sendMessage(MessageType.GET_CHUNKS, id, getChunksRequestCodec, { chunks });
    stalled.push(session);
  }
  const pinger = setInterval(() => {
    for (const session of stalled) session.sendMessage(MessageType.PING, 0, pingCodec, { sentAt: 1 });
  }, 200);
  onCleanup(t, () => {
    clearInterval(pinger);
    for (const session of stalled) session.socket.destroy();
  });
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, context.host.sendBytesInUse);
  }, 10);
  onCleanup(t, () => clearInterval(sampler));

  // The stalled clients hold more than the host's budget: this pull waits its turn until they are
  // dropped, pinging so that it is not dropped itself. (A 1 s timeout dropped it now and then
  // when the test files running side by side starved its pings of CPU.)
  await assertServesAPull(context, "during-stalled-readers", { idleTimeoutMs: 3000 });
  await waitFor(() => stalled.every((session) => session.socket.destroyed || session.socket.readableEnded), {
    what: "the host to drop the clients that stopped reading",
    timeoutMs: 20_000,
  });
  await waitFor(() => context.host.sendBytesInUse === 0, { what: "every send buffer given back" });
  assert.ok(peak > 0 && peak <= 64 * MiB, `peak send bytes ${peak} within the host's budget`);
});

test("requests cancelled while the host waits on a client that stopped reading never crash it", async (t) => {
  const context = await fixture(t);
  const session = await RawSession.open(context.link);
  onCleanup(t, () => session.socket.destroy());
  session.socket.pause();
  // 48 MiB per request, in many groups: the host's queue fills, and its read of the next group
  // waits for send budget when the cancel comes.
  const chunks = Array.from({ length: 48 }, (_, i) => ({
    hash: Buffer.alloc(32),
    path: "sub/large.bin",
    offset: (i % 3) * MiB,
    size: MiB,
  }));
  for (let id = 1; id <= 4; id++)
    session.sendMessage(MessageType.GET_CHUNKS, id, getChunksRequestCodec, { chunks });
  await waitFor(() => context.host.sendBytesInUse >= 4 * MiB, { what: "the host's queue to fill" });
  await new Promise((resolve) => setTimeout(resolve, 300));
  for (let id = 1; id <= 4; id++) session.sendMessage(MessageType.CANCEL, id, emptyCodec, {});
  await new Promise((resolve) => setTimeout(resolve, 500));
  session.socket.destroy();
  await assertServesAPull(context, "after-cancels");
});
