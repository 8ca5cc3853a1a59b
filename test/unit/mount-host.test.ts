/**
 * MountHost over a fake dialer: a lost connection is dialed again (with a backoff) until it
 * comes back; requests wait for it until their own deadline; a request that failed on a lost
 * connection runs again on the next one; close() ends the waiting.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { TeleportClient } from "../../src/client/client.js";
import { ErrorCode, isTeleportError, TeleportError } from "../../src/errors.js";
import { MountHost } from "../../src/mount/mount-host.js";

/** A host whose connections the test ends, and which answers dials only while `up`. */
class FakeHost {
  up = true;
  dials = 0;
  readonly clients: { name: string; lose: () => void }[] = [];

  dial = async (onClose: (error: TeleportError) => void): Promise<TeleportClient> => {
    this.dials++;
    if (!this.up) throw new TeleportError(ErrorCode.CONNECTION, "refused");
    const name = `client ${this.clients.length + 1}`;
    const client = { name, close: async () => {} };
    this.clients.push({ name, lose: () => onClose(new TeleportError(ErrorCode.CONNECTION, "lost")) });
    return client as unknown as TeleportClient;
  };

  lose(): void {
    this.clients.at(-1)?.lose();
  }
}

function nameOf(client: TeleportClient): string {
  return (client as unknown as { name: string }).name;
}

test("a lost connection is dialed again, and waiting requests get the new client", async () => {
  const fake = new FakeHost();
  const host = await MountHost.connect(fake.dial);
  const seen: string[] = [];
  host.onConnected((client) => seen.push(nameOf(client)));
  assert.equal(nameOf(await host.client(AbortSignal.timeout(1000))), "client 1");
  fake.up = false;
  fake.lose();
  assert.equal(host.connected, false);
  const waiting = host.client(AbortSignal.timeout(10_000));
  setTimeout(() => {
    fake.up = true;
  }, 700);
  assert.equal(nameOf(await waiting), "client 2");
  assert.ok(fake.dials >= 3, `dialed ${fake.dials} times`);
  assert.deepEqual(seen, ["client 1", "client 2"]);
  await host.close();
});

test("a request waits for the host only until its deadline", async () => {
  const fake = new FakeHost();
  const host = await MountHost.connect(fake.dial);
  fake.up = false;
  fake.lose();
  const started = performance.now();
  await assert.rejects(host.client(AbortSignal.timeout(300)), { name: "TimeoutError" });
  assert.ok(performance.now() - started >= 250);
  await host.close();
  await assert.rejects(host.client(AbortSignal.timeout(300)), (err) =>
    isTeleportError(err, ErrorCode.CANCELLED),
  );
});

test("retrying runs a request again on the next connection, and only after a lost one", async () => {
  const fake = new FakeHost();
  const host = await MountHost.connect(fake.dial);
  let attempts = 0;
  const result = await host.retrying(AbortSignal.timeout(10_000), async () => {
    attempts++;
    const client = await host.client(AbortSignal.timeout(10_000));
    if (nameOf(client) === "client 1") {
      fake.lose();
      throw new TeleportError(ErrorCode.CONNECTION, "connection closed");
    }
    return nameOf(client);
  });
  assert.equal(result, "client 2");
  assert.equal(attempts, 2);

  let refused = 0;
  await assert.rejects(
    host.retrying(AbortSignal.timeout(10_000), async () => {
      refused++;
      throw new TeleportError(ErrorCode.NOT_FOUND, "no such file");
    }),
    (err) => isTeleportError(err, ErrorCode.NOT_FOUND),
  );
  assert.equal(refused, 1);
  await host.close();
});
