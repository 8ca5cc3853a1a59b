/**
 * QUIC authenticates the host as strongly as TLS does: a machine in the middle that relays the
 * real host's preamble (its certificate, the certificate key's signature over the host's QUIC
 * key, its nonce) but completes the QUIC handshake with a key of its own is refused. The relay
 * is built on the raw quinn binding, as an attacker would.
 */
import assert from "node:assert/strict";
import { createPrivateKey, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { test } from "node:test";
import { ErrorCode } from "../../src/errors.js";
import { loadOrCreateIdentity, shareSecret } from "../../src/transport/identity.js";
import { quicAvailable, quicTransport } from "../../src/transport/quic.js";
import { onCleanup, tempDir } from "../helpers/context.js";

interface RawStream {
  write(data: Uint8Array): Promise<void>;
  read(maxLength: number): Promise<Uint8Array | null>;
}
interface RawConnection {
  outboundStream(): Promise<RawStream>;
  inboundStream(): Promise<RawStream>;
  abort(): void;
}
interface Quinn {
  QuinnConfig: new (options: Record<string, unknown>) => unknown;
  Server: new (
    config: unknown,
    ip: string,
    port: number,
  ) => { port(): number; inboundConnection(): Promise<RawConnection>; abort(): Promise<void> };
  Client: new (
    config: unknown,
    family: 0,
  ) => { outboundConnection(ip: string, port: number): Promise<RawConnection>; abort(): void };
}

/** A QUIC endpoint configuration with a fresh Ed25519 key: the attacker's own. */
function attackerConfig(quinn: Quinn): unknown {
  const seed = randomBytes(32);
  const key = createPrivateKey({
    key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]),
    format: "der",
    type: "pkcs8",
  });
  const publicKey = Buffer.from(key.export({ format: "jwk" }).x as string, "base64url");
  return new quinn.QuinnConfig({
    privateKeyProto: Buffer.concat([Buffer.from([0x08, 0x01, 0x12, 0x40]), seed, publicKey]),
    handshakeTimeout: 5000,
    maxIdleTimeout: 5000,
    keepAliveInterval: 1000,
    maxConcurrentStreamLimit: 4,
    maxStreamData: 10_000_000,
    maxConnectionData: 15_000_000,
    receiveBufferSize: 1 << 20,
    sendBufferSize: 1 << 20,
    shutdownTimeout: 1000,
  });
}

async function readSome(stream: RawStream, atLeast: number): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  let have = 0;
  while (have < atLeast) {
    const part = await stream.read(65536);
    if (part === null) break;
    parts.push(part);
    have += part.length;
  }
  return Buffer.concat(parts);
}

test("a relay that shows the real host's preamble but its own QUIC key is refused", {
  skip: quicAvailable ? false : "QUIC's native binding is not installed on this platform",
}, async (t) => {
  const quinn = createRequire(import.meta.url)("@chainsafe/libp2p-quic-linux-x64-gnu") as Quinn;
  const home = await tempDir(t, "quic-mitm");
  const identity = await loadOrCreateIdentity(home);
  const host = await quicTransport.listen(identity, { host: "127.0.0.1", port: 0 }, (stream) => {
    stream.stream.on("error", () => {});
  });
  onCleanup(t, () => host.close());

  const relay = new quinn.Server(attackerConfig(quinn), "127.0.0.1", 0);
  const upstream = new quinn.Client(attackerConfig(quinn), 0);
  onCleanup(t, async () => {
    upstream.abort();
    await relay.abort();
  });
  let relayed = 0;
  const relaying = (async () => {
    const victim = await relay.inboundConnection();
    const fromVictim = await victim.inboundStream();
    const clientPreamble = await readSome(fromVictim, 36);
    const real = await upstream.outboundConnection("127.0.0.1", host.port);
    const toHost = await real.outboundStream();
    await toHost.write(clientPreamble);
    const hostPreamble = await readSome(toHost, 8);
    const needed = 8 + hostPreamble.readUInt16LE(4) + hostPreamble.readUInt16LE(6) + 32;
    const whole = Buffer.concat([hostPreamble, await readSome(toHost, needed - hostPreamble.length)]);
    relayed = whole.length;
    await fromVictim.write(whole);
  })();
  relaying.catch(() => {});

  const link = {
    host: "127.0.0.1",
    port: relay.port(),
    fingerprint: identity.fingerprint,
    secret: shareSecret(identity, home),
  };
  await assert.rejects(quicTransport.dial(link, { timeoutMs: 5000 }), { code: ErrorCode.FINGERPRINT });
  assert.ok(relayed > 100, "the relay did pass on the real host's preamble");
});
