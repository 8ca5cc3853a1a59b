import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { isTeleportError } from "../../src/errors.js";
import { RelayServer } from "../../src/relay/relay-server.js";
import { claimJoinCode } from "../../src/rendezvous/join-claim.js";
import { formatJoinCode, newJoinCode, parseJoinCode } from "../../src/rendezvous/join-code.js";
import { offerJoinCode } from "../../src/rendezvous/join-offer.js";
import { MAX_MESSAGES_EACH_WAY } from "../../src/rendezvous/mailbox.js";
import type { MailboxConnection } from "../../src/rendezvous/mailbox-connection.js";
import { dialRelayMailbox } from "../../src/rendezvous/mailbox-dial.js";
import { MailboxFrameReader } from "../../src/rendezvous/mailbox-protocol.js";
import { isPlainName } from "../../src/rendezvous/offer-payload.js";
import { EVEN_WORDS, ODD_WORDS } from "../../src/rendezvous/pgp-words.js";
import { mailboxService } from "../../src/rendezvous/relay-mailbox.js";

describe("join codes", () => {
  it("are a nameplate and an odd then an even PGP word, and parse back whatever the case and spaces", () => {
    for (let i = 0; i < 50; i += 1) {
      const code = newJoinCode(1 + i);
      assert.ok(ODD_WORDS.includes(code.words[0] ?? ""));
      assert.ok(EVEN_WORDS.includes(code.words[1] ?? ""));
      assert.deepEqual(parseJoinCode(` ${formatJoinCode(code).toUpperCase()} `), code);
    }
    assert.deepEqual(parseJoinCode("7-crossover-clockwork"), {
      nameplate: 7,
      words: ["crossover", "clockwork"],
    });
  });

  it("refuse what is not one, as a usage error, so a typo burns no offer", () => {
    for (const text of [
      "",
      "7",
      "7-crossover",
      "x-crossover-clockwork",
      "07-crossover-clockwork",
      "7-clockwork-crossover",
      "7-crossover-clockwork-x",
      "1234567-crossover-clockwork",
    ]) {
      assert.throws(
        () => parseJoinCode(text),
        (err: unknown) => isTeleportError(err, "TELEPORT_ERR_USAGE"),
        text,
      );
    }
  });

  it("the word lists are the PGP list: 256 words each, all different", () => {
    assert.equal(ODD_WORDS.length, 256);
    assert.equal(EVEN_WORDS.length, 256);
    assert.equal(new Set([...ODD_WORDS, ...EVEN_WORDS]).size, 512);
    assert.equal(EVEN_WORDS[0x3b], "clockwork");
    assert.equal(ODD_WORDS[0x3c], "crossover");
  });
});

describe("offer payload names", () => {
  it("take one plain path component only", () => {
    for (const name of ["photos", "a b.txt", "ünïcode", ".hidden"]) assert.ok(isPlainName(name), name);
    for (const name of ["", ".", "..", "a/b", "..\\x", "a\nb", "x\u0000", "n".repeat(256)])
      assert.ok(!isPlainName(name), name);
  });
});

describe("mailbox frames", () => {
  it("a length over the cap is refused before its bytes arrive", () => {
    const reader = new MailboxFrameReader({ relayHello: false });
    const header = Buffer.alloc(2);
    header.writeUInt16LE(60_000);
    assert.throws(() => reader.push(header));
  });

  it("a frame of a type the mailbox does not have is a PROTOCOL error", () => {
    const reader = new MailboxFrameReader({ relayHello: false });
    assert.throws(
      () => reader.push(Buffer.from([2, 0, 0x7f, 0])),
      (err: unknown) => isTeleportError(err),
    );
  });
});

describe("the mailbox in a relay", () => {
  let relay: RelayServer;
  const service = mailboxService();
  const open: MailboxConnection[] = [];
  const dial = async () => {
    const connection = await dialRelayMailbox({ host: relay.host, port: relay.port });
    open.push(connection);
    return connection;
  };

  before(async () => {
    relay = await RelayServer.start({ bind: "127.0.0.1", port: 0, services: [service] });
  });
  after(async () => {
    for (const connection of open) connection.destroy();
    await relay.close();
  });

  async function allocate(expireSeconds = 60): Promise<{ sender: MailboxConnection; nameplate: number }> {
    const sender = await dial();
    sender.send({ type: "allocate", expireSeconds });
    const frame = await sender.next(5000);
    assert.equal(frame.type, "allocated");
    return { sender, nameplate: frame.type === "allocated" ? frame.nameplate : 0 };
  }

  it("puts one receiver through and forwards messages both ways; a second claim is refused as used", async () => {
    const { sender, nameplate } = await allocate();
    const receiver = await dial();
    receiver.send({ type: "claim", nameplate });
    assert.deepEqual(await sender.next(5000), { type: "claimed" });
    receiver.send({ type: "message", body: Buffer.from("to sender") });
    assert.deepEqual(await sender.next(5000), { type: "message", body: Buffer.from("to sender") });
    sender.send({ type: "message", body: Buffer.from("to receiver") });
    assert.deepEqual(await receiver.next(5000), { type: "message", body: Buffer.from("to receiver") });
    const second = await dial();
    second.send({ type: "claim", nameplate });
    assert.deepEqual(await second.next(5000), { type: "refused", refusal: "used" });
  });

  it("refuses a nameplate nobody allocated as unknown, and one whose offer ran out as expired", async () => {
    const stranger = await dial();
    const { nameplate } = await allocate(1);
    stranger.send({ type: "claim", nameplate: nameplate === 999_999 ? 1 : 999_999 });
    assert.deepEqual(await stranger.next(5000), { type: "refused", refusal: "unknown" });
    const held = service.mailbox.size;
    while (service.mailbox.size === held) await new Promise((resolve) => setTimeout(resolve, 20));
    const late = await dial();
    late.send({ type: "claim", nameplate });
    assert.deepEqual(await late.next(5000), { type: "refused", refusal: "expired" });
  });

  it("bounds the messages each way: past the bound, both sides are closed", async () => {
    const { sender, nameplate } = await allocate();
    const receiver = await dial();
    receiver.send({ type: "claim", nameplate });
    await sender.next(5000);
    for (let i = 0; i <= MAX_MESSAGES_EACH_WAY; i += 1)
      receiver.send({ type: "message", body: Buffer.from([i]) });
    for (let i = 0; i < MAX_MESSAGES_EACH_WAY; i += 1)
      assert.equal((await sender.next(5000)).type, "message");
    await assert.rejects(sender.next(5000), (err: unknown) =>
      isTeleportError(err, "TELEPORT_ERR_CONNECTION"),
    );
  });
});

describe("a waiting offer at a relay that ends silent links", () => {
  it("keeps its mailbox connection alive with pings, and the code still works after the relay's idle time", async () => {
    const relay = await RelayServer.start({
      bind: "127.0.0.1",
      port: 0,
      services: [mailboxService()],
      limits: { idleTimeoutMs: 600 },
    });
    const address = { host: relay.host, port: relay.port };
    const stop = new AbortController();
    try {
      let code = "";
      const offered = offerJoinCode({
        payload: "the link",
        mailbox: address,
        lan: false,
        expireMs: 30_000,
        keepaliveMs: 150,
        signal: stop.signal,
        onCode: (printed) => {
          code = printed;
        },
      });
      while (code === "") await new Promise((resolve) => setTimeout(resolve, 10));
      // Three idle timeouts' worth of waiting: without its pings the relay would have cut the offer.
      await new Promise((resolve) => setTimeout(resolve, 1800));
      assert.deepEqual(await claimJoinCode(code, { mailbox: address, lan: false, signal: stop.signal }), {
        payload: "the link",
        via: "relay",
      });
      await offered;
    } finally {
      stop.abort();
      await relay.close();
    }
  });
});
