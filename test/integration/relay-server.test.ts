/**
 * The relay server in process, spoken to with raw relay channels: who may register under a
 * fingerprint, the bounds (counts, times, rates) and the reasons given for each refusal, the
 * UDP reflector, and the hook that mounts a service.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { describe, it, type TestContext } from "node:test";
import { ErrorCode, isTeleportError } from "../../src/errors.js";
import { openRelayService, RelayChannel } from "../../src/relay/relay-channel.js";
import type { RelayLimits } from "../../src/relay/relay-limits.js";
import {
  encodeReflectDatagram,
  type RelayAddress,
  type RelayService,
  RelayType,
  signRegistration,
} from "../../src/relay/relay-protocol.js";
import { RelayServer } from "../../src/relay/relay-server.js";
import { type HostIdentity, loadOrCreateIdentity } from "../../src/transport/identity.js";
import { onCleanup, tempDir, waitFor } from "../helpers/context.js";

async function startRelay(
  t: TestContext,
  limits: Partial<RelayLimits> = {},
  services: RelayService[] = [],
): Promise<{ relay: RelayServer; address: RelayAddress }> {
  const relay = await RelayServer.start({
    bind: "127.0.0.1",
    limits,
    services,
    faults: { fault: undefined, captureFile: undefined },
  });
  onCleanup(t, () => relay.close());
  return { relay, address: { host: "127.0.0.1", port: relay.port } };
}

async function identity(t: TestContext, label: string): Promise<HostIdentity> {
  return loadOrCreateIdentity(await tempDir(t, `relay-${label}`));
}

async function channel(t: TestContext, address: RelayAddress): Promise<RelayChannel> {
  const opened = await RelayChannel.connect(address);
  onCleanup(t, () => opened.close());
  return opened;
}

/** A control connection registered as `host`. */
async function register(t: TestContext, address: RelayAddress, host: HostIdentity): Promise<RelayChannel> {
  const control = await channel(t, address);
  control.send({ type: RelayType.REGISTER, ...signRegistration(host, control.nonce) });
  const answer = await control.next();
  assert.equal(answer.type, RelayType.REGISTERED);
  return control;
}

/** Asserts that the relay's next word on `on` is REFUSED with `reason`. */
async function refused(on: RelayChannel, reason: string): Promise<void> {
  await assert.rejects(on.next(), (err: unknown) => {
    assert.ok(isTeleportError(err, ErrorCode.RELAY_REFUSED), String(err));
    assert.match(err.message, new RegExp(`refused: ${reason}:`));
    return true;
  });
}

describe("relay server", () => {
  it("refuses a host that signs with a key other than its certificate's, or replays a signature", async (t) => {
    const { address, relay } = await startRelay(t);
    const host = await identity(t, "host");
    const impostor = await identity(t, "impostor");
    const forged = await channel(t, address);
    const certificate = signRegistration(host, forged.nonce).certificate;
    forged.send({
      type: RelayType.REGISTER,
      certificate,
      signature: signRegistration(impostor, forged.nonce).signature,
    });
    await refused(forged, "bad-signature");
    // A signature the real host made for another connection's nonce proves nothing here.
    const watched = await channel(t, address);
    const replayed = await channel(t, address);
    replayed.send({ type: RelayType.REGISTER, ...signRegistration(host, watched.nonce) });
    await refused(replayed, "bad-signature");
    assert.equal(relay.stats.hosts, 0);
    const client = await channel(t, address);
    client.send({ type: RelayType.CONNECT, fingerprint: host.fingerprint });
    await refused(client, "unknown-host");
  });

  it("holds at most maxHosts; a host registering again replaces its old control connection", async (t) => {
    const { address, relay } = await startRelay(t, { maxHosts: 1 });
    const first = await identity(t, "first");
    const old = await register(t, address, first);
    const second = await channel(t, address);
    second.send({ type: RelayType.REGISTER, ...signRegistration(await identity(t, "second"), second.nonce) });
    await refused(second, "full");
    await register(t, address, first);
    await refused(old, "replaced");
    assert.equal(relay.stats.hosts, 1);
  });

  it("refuses a first frame that opens nothing, an oversized frame, and a silent connection", async (t) => {
    const { address } = await startRelay(t, { firstFrameTimeoutMs: 300 });
    const pinger = await channel(t, address);
    pinger.send({ type: RelayType.REGISTERED, fingerprint: randomBytes(32) });
    await refused(pinger, "unexpected");
    const oversized = await channel(t, address);
    oversized.socket.write(Buffer.from([0xff, 0xff, RelayType.CONNECT]));
    await refused(oversized, "unexpected");
    const silent = await channel(t, address);
    await refused(silent, "timeout");
  });

  it("refuses a client whose host does not accept in time, and too many waiting for one host", async (t) => {
    const { address, relay } = await startRelay(t, { pendingTimeoutMs: 300, maxPendingPerHost: 1 });
    const host = await identity(t, "lazy");
    const control = await register(t, address, host);
    const waiting = await channel(t, address);
    waiting.send({ type: RelayType.CONNECT, fingerprint: host.fingerprint });
    const incoming = await control.next();
    assert.equal(incoming.type, RelayType.INCOMING);
    const second = await channel(t, address);
    second.send({ type: RelayType.CONNECT, fingerprint: host.fingerprint });
    await refused(second, "full");
    await refused(waiting, "timeout");
    await waitFor(() => relay.stats.pending === 0, { what: "the pending connect to be forgotten" });
    const late = await channel(t, address);
    if (incoming.type !== RelayType.INCOMING) return;
    late.send({ type: RelayType.ACCEPT, token: incoming.token });
    await refused(late, "unexpected");
  });

  it("bounds frames per connection and connections per address", async (t) => {
    const { address, relay } = await startRelay(t, { framesPerSecond: 5, maxConnectionsPerAddress: 3 });
    const host = await identity(t, "chatty");
    const control = await register(t, address, host);
    for (let i = 0; i < 30; i++) control.send({ type: RelayType.PING });
    await assert.rejects(
      (async () => {
        for (;;) await control.next();
      })(),
      (err: unknown) => isTeleportError(err, ErrorCode.RELAY_REFUSED) && /refused: rate:/.test(err.message),
    );
    await waitFor(() => relay.stats.connections === 0, { what: "the flooding connection to close" });
    const held = [await channel(t, address), await channel(t, address), await channel(t, address)];
    await assert.rejects(RelayChannel.connect(address), /refused: full:/);
    held[0]?.close();
    await waitFor(
      () =>
        RelayChannel.connect(address).then(
          (opened) => {
            opened.close();
            return true;
          },
          () => false,
        ),
      { what: "a connection once one closed" },
    );
  });

  it("splices a client to its host's accept leg, bounded to the host's rate", async (t) => {
    const rate = 1024 * 1024;
    const { address } = await startRelay(t, { hostBytesPerSecond: rate });
    const host = await identity(t, "rated");
    const control = await register(t, address, host);
    const client = await channel(t, address);
    client.send({ type: RelayType.CONNECT, fingerprint: host.fingerprint });
    const incoming = await control.next();
    assert.ok(incoming.type === RelayType.INCOMING);
    const leg = await channel(t, address);
    leg.send({ type: RelayType.ACCEPT, token: incoming.token });
    assert.equal((await leg.next()).type, RelayType.SPLICED);
    assert.equal((await client.next()).type, RelayType.SPLICED);
    const sender = leg.release().socket;
    const receiver = client.release().socket;
    const payload = randomBytes(3 * rate);
    const started = performance.now();
    let received = 0;
    const chunks: Buffer[] = [];
    receiver.on("data", (data: Buffer) => {
      chunks.push(data);
      received += data.length;
    });
    receiver.resume();
    sender.write(payload);
    await waitFor(() => received >= payload.length, { what: "the payload", timeoutMs: 20_000 });
    const seconds = (performance.now() - started) / 1000;
    assert.ok(Buffer.concat(chunks).equals(payload), "the bytes arrive as sent");
    // A burst of one second's worth, then the rate: 3 MiB take at least about 2 s.
    assert.ok(seconds >= 1.6, `3 MiB at 1 MiB/s took ${seconds.toFixed(2)} s`);
  });

  it("reflects the address and port a UDP socket is seen from, for a nonce it gave out", async (t) => {
    const { address } = await startRelay(t);
    const asker = await channel(t, address);
    asker.send({ type: RelayType.REFLECT });
    const nonce = await asker.next();
    assert.ok(nonce.type === RelayType.REFLECT_NONCE);
    const udp = createSocket("udp4");
    onCleanup(t, () => udp.close());
    udp.bind(0, "127.0.0.1");
    await once(udp, "listening");
    udp.send(encodeReflectDatagram(randomBytes(16)), nonce.udpPort, "127.0.0.1");
    udp.send(encodeReflectDatagram(nonce.nonce), nonce.udpPort, "127.0.0.1");
    const answer = await asker.next();
    assert.deepEqual(answer, { type: RelayType.REFLECTED, address: "127.0.0.1", port: udp.address().port });
  });

  it("hands a SERVICE connection to the service mounted under its name, and only its frames", async (t) => {
    const echo: RelayService = {
      name: "echo",
      open(peer) {
        peer.onFrame((type, body) => peer.send(type, Buffer.concat([Buffer.from("echo:"), body])));
      },
    };
    const { address } = await startRelay(t, {}, [echo]);
    const peer = await openRelayService(address, "echo");
    onCleanup(t, () => peer.close());
    const answers: string[] = [];
    peer.onFrame((type, body) => answers.push(`${type}:${body.toString()}`));
    peer.send(0x41, Buffer.from("hello"));
    await waitFor(() => answers.length === 1, { what: "the echo" });
    assert.deepEqual(answers, ["65:echo:hello"]);
    assert.throws(() => peer.send(RelayType.CONNECT, Buffer.alloc(32)), { code: ErrorCode.USAGE });
    const nowhere = await channel(t, address);
    nowhere.send({ type: RelayType.SERVICE, name: "mailbox" });
    await refused(nowhere, "no-service");
  });
});
