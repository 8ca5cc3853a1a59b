/**
 * An upload's routed data streams over real loopback TLS: the pusher's dial sends its token as a
 * route ahead of TLS, the host's listener hands the connection's descriptor to whoever wants that
 * route (push/offered-streams.ts), and the taker does TLS and the host's side of the opening on
 * it (client/pool/routed-streams.ts), as a pool's stream thread does. A stream that proves another
 * secret, names another client, or gives back another token than its route, is refused; a route nothing wants goes
 * through TLS on the listener as any connection does.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { type TestContext, test } from "node:test";
import { MessageChannel } from "node:worker_threads";
import { HostConnection } from "../../src/client/host-connection.js";
import {
  PortRoutedSockets,
  serveRoutedSockets,
  takeOfferedStream,
} from "../../src/client/pool/routed-streams.js";
import { ErrorCode, isTeleportError } from "../../src/errors.js";
import { platformIo } from "../../src/platform/io.js";
import { StreamOffers } from "../../src/push/offered-streams.js";
import { offerStream } from "../../src/push/pusher-streams.js";
import { certificateFingerprint, loadOrCreateIdentity } from "../../src/transport/identity.js";
import type { ShareLink } from "../../src/transport/link.js";
import { acceptTls, tcpTransport } from "../../src/transport/tcp.js";
import type { TransportStream } from "../../src/transport/transport.js";
import { tempDir, waitFor } from "../helpers/context.js";

const PUSHER = randomBytes(16);

interface Listening {
  link: ShareLink;
  offers: StreamOffers;
  identity: { keyPem: string; certPem: string };
  /** Streams that went through TLS on the listener itself. */
  tls: TransportStream[];
}

async function listening(t: TestContext): Promise<Listening> {
  const identity = await loadOrCreateIdentity(await tempDir(t, "routed-streams-home"));
  const offers = new StreamOffers(5000);
  const tls: TransportStream[] = [];
  const listener = await tcpTransport.listen(
    identity,
    { host: "127.0.0.1", port: 0 },
    (stream) => {
      tls.push(stream);
      stream.stream.destroy();
    },
    { routeStream: (route, socket) => offers.route(route, socket) },
  );
  t.after(() => listener.close());
  const link = {
    host: "127.0.0.1",
    port: listener.port,
    fingerprint: certificateFingerprint(identity.certPem),
    secret: randomBytes(32),
  };
  return { link, offers, identity, tls };
}

/** The pusher's side, as PusherStreams dials: routed by `route`, proving `secret`, giving `token` back. */
async function pusherStream(
  link: ShareLink,
  route: Buffer,
  secret: Buffer,
  token: Buffer,
  clientId: Buffer = PUSHER,
) {
  const stream = await tcpTransport.dial(link, { route });
  const connection = HostConnection.greet(stream, {
    secret,
    clientId,
    clientName: "routed-streams test",
    features: 0,
  });
  return offerStream(connection, token);
}

test("a routed stream reaches its taker before TLS, and after the opening the host is its client", async (t) => {
  const { link, offers, identity, tls } = await listening(t);
  const { token, value } = offers.wantRouted(PUSHER.toString("hex"));
  const pushing = pusherStream(link, token, link.secret, token);
  const socket = await value;
  assert.ok(socket.fd > 0 && Buffer.from(socket.token).equals(token));
  const hostSide = await acceptTls(identity, socket.fd, socket.head);
  await takeOfferedStream(hostSide, { secret: link.secret, pusher: PUSHER, token });
  const pusherSide = await pushing;
  // Roles swapped: what the host writes now is the pusher's to read, on the same TLS stream.
  const received = new Promise<Buffer>((resolve) => pusherSide.stream.once("data", resolve));
  hostSide.stream.write("the host speaks first now");
  assert.equal((await received).toString(), "the host speaks first now");
  assert.equal(tls.length, 0, "nothing went through the listener's own TLS");
  assert.equal(offers.waiting, 0, "the token is used");
  hostSide.stream.destroy();
  pusherSide.stream.destroy();
});

/**
 * A routed stream whose pusher opens it with `wrong` in place of what the host expects: the host's
 * side of the opening refuses it (AUTH). Resolves with what the pusher's side came to.
 */
async function refusedOpening(
  t: TestContext,
  wrong: { secret?: Buffer; clientId?: Buffer; token?: Buffer },
): Promise<unknown> {
  const { link, offers, identity } = await listening(t);
  const { token, value } = offers.wantRouted(PUSHER.toString("hex"));
  const secret = wrong.secret ?? link.secret;
  const pushing = pusherStream(link, token, secret, wrong.token ?? token, wrong.clientId ?? PUSHER).catch(
    (err: unknown) => err,
  );
  const socket = await value;
  const hostSide = await acceptTls(identity, socket.fd, socket.head);
  await assert.rejects(takeOfferedStream(hostSide, { secret: link.secret, pusher: PUSHER, token }), (err) =>
    isTeleportError(err, ErrorCode.AUTH),
  );
  return pushing;
}

test("a routed stream that proves another secret is refused", async (t) => {
  const pushed = await refusedOpening(t, { secret: randomBytes(32) });
  assert.ok(!(pushed as { stream?: unknown }).stream, "the pusher never gets to serve on it");
});

test("a routed stream of another client than the upload's is refused", async (t) => {
  await refusedOpening(t, { clientId: randomBytes(16) });
});

test("a routed stream that gives back another token than its route is refused", async (t) => {
  await refusedOpening(t, { token: randomBytes(16) });
});

test("a route nothing wants goes through the listener's TLS; a malformed one is closed", async (t) => {
  const { link, offers, tls } = await listening(t);
  const unwanted = randomBytes(16);
  const refused = await pusherStream(link, unwanted, link.secret, unwanted).catch((err: unknown) => err);
  assert.ok(isTeleportError(refused), "no upload here takes it");
  assert.equal(tls.length, 1, "it went through TLS as any connection does");
  assert.equal(offers.waiting, 0);

  const closed = await new Promise<string>((resolve) => {
    const socket = connect(link.port, link.host, () => socket.write(Buffer.from("TPRX not a route at all")));
    socket.on("data", () => resolve("answered"));
    socket.once("close", () => resolve("closed"));
    socket.on("error", () => {});
  });
  assert.equal(closed, "closed");
  assert.equal(tls.length, 1);
});

test("an ask a stream thread takes back is cancelled where the sockets are given; a socket given as it was taken back is closed", async (t) => {
  const { port1, port2 } = new MessageChannel();
  t.after(() => port1.close());
  // The giving side hands out a real connection's descriptor even once asked to stop: the race
  // of a socket already on its way when the thread takes its ask back.
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.close());
  const peer = connect((server.address() as AddressInfo).port, "127.0.0.1");
  const [accepted] = (await once(server, "connection")) as [Socket];
  const asks: AbortSignal[] = [];
  let give: (() => void) | undefined;
  serveRoutedSockets(
    port1,
    {
      next: (signal) => {
        if (signal !== undefined) asks.push(signal);
        return new Promise((resolve) => {
          give = () =>
            resolve({ fd: platformIo.duplicate(accepted) as number, head: new Uint8Array(), token: PUSHER });
        });
      },
    },
    new AbortController().signal,
  );
  const thread = new PortRoutedSockets(port2);
  const dropped = new AbortController();
  const asked = thread.next(dropped.signal);
  await waitFor(() => asks.length === 1 || undefined, { what: "the ask to reach the giving side" });

  dropped.abort();
  await assert.rejects(asked, (err: unknown) => isTeleportError(err) && err.code === ErrorCode.CANCELLED);
  await waitFor(() => asks[0]?.aborted || undefined, { what: "the ask to be cancelled where it was served" });

  give?.();
  accepted.destroy(); // the thread's descriptor is the only one left open
  const ended = new Promise((resolve) => peer.once("close", resolve));
  peer.resume();
  await ended; // the thread closed the socket it was given too late
});
