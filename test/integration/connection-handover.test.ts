/**
 * Connection.release: a stream handed from one Connection to the next, as an upload's swap of
 * roles does (push/), over a real loopback socket.
 */
import assert from "node:assert/strict";
import { connect, createServer, type Socket } from "node:net";
import { test } from "node:test";
import { Connection } from "../../src/engine/connection.js";
import type { TeleportError } from "../../src/errors.js";
import { decodeMessage } from "../../src/wire/codec.js";
import { pingCodec } from "../../src/wire/messages.js";

const FIRST = 4;
const SECOND = 5;

async function socketPair(): Promise<[Socket, Socket]> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
  const dialed = connect(address.port, "127.0.0.1");
  const pair: [Socket, Socket] = [await accepted, dialed];
  server.close();
  return pair;
}

interface Seen {
  frames: { type: number; sentAt: number }[];
  closed: (TeleportError | undefined)[];
}

function recording(socket: Socket, seen: Seen, onFrame?: (type: number) => void): Connection {
  return new Connection(socket, {
    allocateBody: (_type, _id, length) => Buffer.allocUnsafe(length),
    onFrame: (type, _requestId, body) => {
      seen.frames.push({ type, sentAt: decodeMessage(pingCodec, body).sentAt });
      onFrame?.(type);
    },
    onClose: (error) => seen.closed.push(error),
  });
}

test("a released stream's next frames go to the connection that took it, and its close is that one's", async () => {
  const [hostSide, peerSide] = await socketPair();
  const before: Seen = { frames: [], closed: [] };
  const after: Seen = { frames: [], closed: [] };
  let first: Connection | undefined;
  let successor: Connection | undefined;
  const tookOver = new Promise<void>((resolve) => {
    first = recording(hostSide, before, (type) => {
      if (type !== FIRST) return;
      // Released in the handler of the last frame of its role, as HostSession does at UPLOAD_SWITCH.
      first?.release();
      successor = recording(hostSide, after);
      resolve();
    });
  });
  const peer = recording(peerSide, { frames: [], closed: [] });
  peer.send(FIRST, 0, pingCodec, { sentAt: 1 });
  await tookOver;
  peer.send(SECOND, 0, pingCodec, { sentAt: 2 });
  await new Promise<void>((resolve) => {
    const poll = () => (after.frames.length > 0 ? resolve() : setImmediate(poll));
    poll();
  });
  assert.deepEqual(before.frames, [{ type: FIRST, sentAt: 1 }]);
  assert.deepEqual(after.frames, [{ type: SECOND, sentAt: 2 }]);
  await peer.close();
  await successor?.closed;
  assert.equal(before.closed.length, 0, "the released connection is told nothing of the close");
});
