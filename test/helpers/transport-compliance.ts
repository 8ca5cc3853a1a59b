/**
 * One compliance suite for every transport (as js-libp2p's interface-compliance-tests do for
 * its transports): whatever carries teleport's streams must pass it unchanged. Real sockets on
 * loopback, a real host identity; framing goes through the real Connection.
 */
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { type TestContext, test } from "node:test";
import { Connection } from "../../src/engine/connection.js";
import { ErrorCode, TeleportError } from "../../src/errors.js";
import { loadOrCreateIdentity, shareSecret } from "../../src/transport/identity.js";
import type { ShareLink } from "../../src/transport/link.js";
import {
  authProof,
  type Transport,
  type TransportStream,
  verifyAuthProof,
} from "../../src/transport/transport.js";
import { FRAME_HEADER_SIZE, writeFrameHeader } from "../../src/wire/frame.js";
import { emptyCodec, MAX_FRAME_BODY, MessageType } from "../../src/wire/messages.js";
import { onCleanup, tempDir, waitFor } from "./context.js";
import { MiB, pseudoRandomBytes } from "./tree.js";

interface Pair {
  link: ShareLink;
  client: TransportStream;
  server: TransportStream;
  /** Streams the listener accepted, in order. */
  accepted: TransportStream[];
  dial(): Promise<{ client: TransportStream; server: TransportStream }>;
}

/** A listener on loopback with a fresh identity, and one stream dialled to it. */
async function pair(t: TestContext, transport: Transport): Promise<Pair> {
  const home = await tempDir(t, `transport-${transport.kind}`);
  const identity = await loadOrCreateIdentity(home);
  const accepted: TransportStream[] = [];
  const listener = await transport.listen(identity, { host: "127.0.0.1", port: 0 }, (stream) => {
    // Whether a peer's abrupt close is an error here is the transport's choice (a QUIC abort
    // is, a TCP FIN is not); the tests look at what the streams do, through Connection.
    stream.stream.on("error", () => {});
    accepted.push(stream);
  });
  const link = {
    host: "127.0.0.1",
    port: listener.port,
    fingerprint: identity.fingerprint,
    secret: shareSecret(identity, home),
  };
  const dial = async () => {
    const before = accepted.length;
    const client = await transport.dial(link, { timeoutMs: 5000 });
    onCleanup(t, () => client.stream.destroy());
    const server = await waitFor(() => accepted[before], { what: "the listener to accept the stream" });
    onCleanup(t, () => server.stream.destroy());
    client.stream.on("error", () => {});
    return { client, server };
  };
  onCleanup(t, () => listener.close());
  const first = await dial();
  return { link, ...first, accepted, dial };
}

/** Frames received on a Connection, and the error it closed with. */
function framed(stream: TransportStream, idleTimeoutMs?: number) {
  const frames: { type: number; requestId: number; body: Buffer }[] = [];
  let closedWith: TeleportError | undefined | "open" = "open";
  const connection = new Connection(
    stream.stream,
    {
      allocateBody: (_type, _id, length) => Buffer.allocUnsafe(length),
      onFrame: (type, requestId, body) => frames.push({ type, requestId, body: Buffer.from(body) }),
      onClose: (error) => {
        closedWith = error;
      },
    },
    idleTimeoutMs === undefined ? {} : { idleTimeoutMs },
  );
  return { connection, frames, closedWith: () => closedWith };
}

function ended(stream: TransportStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.stream.destroyed) resolve();
    else stream.stream.once("close", () => resolve());
  });
}

/**
 * Runs the suite over `transport`; `label` names the run where one transport is run more than
 * once (plaintext through its own listener and through a TLS listener that allows it).
 */
export function transportCompliance(transport: Transport, label = transport.name): void {
  const name = (what: string) => `${label}: ${what}`;
  const skip = transport.available
    ? false
    : `${transport.name} is not available on ${process.platform}-${process.arch} (no native binding)`;

  test(name("bytes cross both ways, in order; each stream has its own session binding"), {
    skip,
  }, async (t) => {
    const { client, server, dial } = await pair(t, transport);
    assert.equal(client.transport, transport.kind);
    assert.equal(client.encrypted, transport.encrypted);
    assert.equal(server.remoteAddress, "127.0.0.1");
    const binding = client.sessionBinding();
    assert.equal(binding.length, 32);
    assert.deepEqual(server.sessionBinding(), binding, "both ends derive the same binding");
    const other = await dial();
    assert.notDeepEqual(other.client.sessionBinding(), binding, "another stream, another binding");

    const payload = pseudoRandomBytes(3 * MiB + 5, "compliance");
    const received: Buffer[] = [];
    server.stream.on("data", (data: Buffer) => received.push(data));
    client.stream.write(payload);
    await waitFor(() => Buffer.concat(received).length >= payload.length, { what: "the payload" });
    assert.ok(Buffer.concat(received).equals(payload));
    const back: Buffer[] = [];
    client.stream.on("data", (data: Buffer) => back.push(data));
    server.stream.write("pong");
    await waitFor(() => Buffer.concat(back).toString() === "pong", { what: "the answer" });
    const stats = client.stats();
    assert.ok(stats.bytesSent >= payload.length && stats.bytesReceived >= 4, JSON.stringify(stats));
    assert.ok(stats.rttMs !== undefined && stats.rttMs >= 0 && stats.rttMs < 1000, `rtt ${stats.rttMs}`);
  });

  test(name("the secret proof verifies on the other end, and a wrong secret does not"), {
    skip,
  }, async (t) => {
    const { link, client, server } = await pair(t, transport);
    assert.ok(verifyAuthProof(server, link.secret, authProof(client, link.secret)));
    assert.ok(!verifyAuthProof(server, link.secret, authProof(client, Buffer.alloc(16))));
  });

  test(name("large and empty frames, and many small ones, arrive whole and in order"), {
    skip,
  }, async (t) => {
    const { client, server } = await pair(t, transport);
    const sender = framed(client);
    const receiver = framed(server);
    const large = pseudoRandomBytes(MAX_FRAME_BODY, "large frame"); // the largest allowed
    sender.connection.send(MessageType.END, 1, emptyCodec, {});
    const frame = Buffer.allocUnsafe(FRAME_HEADER_SIZE + large.length);
    writeFrameHeader(frame, 0, MessageType.CHUNK_DATA, 2, large.length);
    large.copy(frame, FRAME_HEADER_SIZE);
    sender.connection.sendOwnedFrame(frame, () => {});
    for (let i = 0; i < 1000; i++) sender.connection.send(MessageType.END, 3 + i, emptyCodec, {});
    await waitFor(() => receiver.frames.length === 1002, { what: "1,002 frames", timeoutMs: 20_000 });
    assert.equal(receiver.frames[0]?.body.length, 0);
    assert.ok(receiver.frames[1]?.body.equals(large));
    assert.deepEqual(
      receiver.frames.slice(2).map((f) => f.requestId),
      Array.from({ length: 1000 }, (_, i) => 3 + i),
    );
  });

  // A QUIC stream reads from its connection only when read, so only TCP's can have bytes waiting.
  test(name("bytes that arrive before the client reads are kept for its first reader"), {
    skip: transport.kind === "tcp" ? skip : `${transport.name} streams read only when read`,
  }, async (t) => {
    const { client, server } = await pair(t, transport);
    const before = client.stats().bytesReceived;
    server.stream.write("early words");
    await waitFor(() => client.stats().bytesReceived > before, { what: "the bytes to arrive" });
    const received: Buffer[] = [];
    client.stream.on("data", (data: Buffer) => received.push(Buffer.from(data)));
    server.stream.write(" and later ones");
    await waitFor(() => Buffer.concat(received).length >= 26, { what: "both writes" });
    assert.equal(Buffer.concat(received).toString(), "early words and later ones");
  });

  test(name("a client stream that steers its reads has large bodies read in place"), {
    skip: transport.kind === "tcp" ? skip : `${transport.name} streams read where they may`,
  }, async (t) => {
    const { client, server } = await pair(t, transport);
    assert.ok(client.steerReads !== undefined, "a TCP stream we dial reads through direct-reads.ts");
    const bodies: Buffer[] = [];
    let inPlaceBytes = 0;
    client.stream.on("data", (data: Buffer) => {
      if (bodies.some((body) => body.buffer === data.buffer)) inPlaceBytes += data.length;
    });
    const frames: Buffer[] = [];
    new Connection(
      client.stream,
      {
        allocateBody: (_type, _id, length) => {
          const body = Buffer.allocUnsafeSlow(length);
          bodies.push(body);
          return body;
        },
        onFrame: (_type, _id, body) => frames.push(Buffer.from(body)),
        onClose: () => {},
      },
      { steerReads: client.steerReads },
    );
    const sender = framed(server);
    const large = pseudoRandomBytes(4 * MiB, "in place");
    for (const requestId of [1, 2]) {
      const frame = Buffer.allocUnsafe(FRAME_HEADER_SIZE + large.length);
      writeFrameHeader(frame, 0, MessageType.CHUNK_DATA, requestId, large.length);
      large.copy(frame, FRAME_HEADER_SIZE);
      sender.connection.sendOwnedFrame(frame, () => {});
      sender.connection.send(MessageType.END, requestId, emptyCodec, {});
    }
    await waitFor(() => frames.length === 4, { what: "4 frames", timeoutMs: 20_000 });
    assert.ok(frames[0]?.equals(large) && frames[2]?.equals(large), "bodies arrive whole");
    assert.deepEqual([frames[1]?.length, frames[3]?.length], [0, 0]);
    assert.ok(inPlaceBytes >= large.length, `only ${inPlaceBytes} bytes were read in place`);
  });

  test(name("a reader that does not read holds the writer back (backpressure)"), { skip }, async (t) => {
    const { client, server } = await pair(t, transport);
    server.stream.pause();
    const block = Buffer.alloc(MiB);
    let written = 0;
    while (client.stream.write(block)) {
      written += block.length;
      assert.ok(written < 256 * MiB, "the stream took 256 MiB without pushing back");
    }
    const drained = new Promise<void>((resolve) => client.stream.once("drain", () => resolve()));
    let received = 0;
    server.stream.on("data", (data: Buffer) => {
      received += data.length;
    });
    server.stream.resume();
    await drained;
    await waitFor(() => received >= written, { what: "the reader to catch up", timeoutMs: 20_000 });
  });

  // What Connection.close relies on: end() flushes, the peer sees everything and then the end,
  // and both sides close (no transport here keeps a half-open stream: none is needed).
  test(name("end: what was written arrives whole, then the end, and both sides close"), {
    skip,
  }, async (t) => {
    const { client, server } = await pair(t, transport);
    const payload = pseudoRandomBytes(5 * MiB, "last words");
    const received: Buffer[] = [];
    server.stream.on("data", (data: Buffer) => received.push(data));
    const serverEnded = new Promise<void>((resolve) => server.stream.once("end", () => resolve()));
    client.stream.write(payload);
    client.stream.end();
    await serverEnded;
    assert.ok(Buffer.concat(received).equals(payload));
    server.stream.end();
    await Promise.all([ended(client), ended(server)]);
  });

  test(name("an abrupt close reaches the other end at once"), { skip }, async (t) => {
    const { client, server } = await pair(t, transport);
    const receiver = framed(server);
    const started = performance.now();
    client.stream.destroy();
    await ended(server);
    assert.ok(performance.now() - started < 2000);
    await waitFor(() => receiver.closedWith() !== "open", { what: "the connection to close" });
  });

  test(name("a silent peer is given up on after the idle timeout"), { skip }, async (t) => {
    const { client, server } = await pair(t, transport);
    client.stream.pause(); // says nothing, reads nothing
    const watcher = framed(server, 300);
    await ended(server);
    const error = watcher.closedWith();
    assert.ok(error instanceof TeleportError && error.code === ErrorCode.TIMEOUT, String(error));
  });

  const hostUnproven = transport.encrypted
    ? skip
    : `${transport.name} does not prove the host's identity (its data streams follow a TLS control connection that did)`;
  test(name("a host that does not hold the link's key is refused"), { skip: hostUnproven }, async (t) => {
    const { link } = await pair(t, transport);
    const wrong = { ...link, fingerprint: Buffer.alloc(32, 7) };
    await assert.rejects(transport.dial(wrong, { timeoutMs: 5000 }), { code: ErrorCode.FINGERPRINT });
  });

  test(name("nothing listening, or a listener that never answers: a clear error in bounded time"), {
    skip,
  }, async (t) => {
    const { link } = await pair(t, transport);
    const accepted: Socket[] = [];
    const silent: Server = createServer((socket) => accepted.push(socket)); // accepts, never speaks
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", () => resolve()));
    onCleanup(t, () => {
      for (const socket of accepted) socket.destroy();
      return new Promise<void>((resolve) => silent.close(() => resolve()));
    });
    const port = (silent.address() as { port: number }).port;
    const started = performance.now();
    await assert.rejects(transport.dial({ ...link, port }, { timeoutMs: 500 }), (err: unknown) => {
      assert.ok(err instanceof TeleportError);
      assert.ok([ErrorCode.TIMEOUT, ErrorCode.CONNECTION].includes(err.code as never), err.code);
      return true;
    });
    assert.ok(performance.now() - started < 3000, "gave up in bounded time");
    const closedPort = { ...link, port: 1 };
    await assert.rejects(transport.dial(closedPort, { timeoutMs: 2000 }), (err: unknown) => {
      assert.ok(err instanceof TeleportError);
      assert.ok([ErrorCode.TIMEOUT, ErrorCode.CONNECTION].includes(err.code as never), err.code);
      return true;
    });
  });
}
