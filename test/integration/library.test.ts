/** The package entry point (package.json "main") is enough to host and pull, as README promises. */
import assert from "node:assert/strict";
import { closeSync, fstatSync, openSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { Host, parseLink, pull, TeleportClient, uploadReceiver } from "../../src/index.js";
import { heldOpenBeneath, onCleanup, tempDir } from "../helpers/context.js";

test("the library entry point hosts a folder and pulls it", async (t) => {
  const base = await tempDir(t, "library");
  await mkdir(join(base, "share"));
  await writeFile(join(base, "share", "hello.txt"), "hello from the library\n");
  const host = await Host.start({ root: join(base, "share"), home: join(base, "home"), bind: "127.0.0.1" });
  onCleanup(t, () => host.close());
  assert.equal(parseLink(host.url).port, host.port);
  const client = await TeleportClient.connect(host.url);
  onCleanup(t, () => client.close());
  const summary = await pull(client, { dest: join(base, "dest") });
  assert.equal(summary.files, 1);
  assert.equal(await readFile(join(base, "dest", "hello.txt"), "utf8"), "hello from the library\n");
});

test("ping measures a round trip to the host, and fails once the connection is closed", async (t) => {
  const base = await tempDir(t, "ping");
  await mkdir(join(base, "share"));
  const host = await Host.start({ root: join(base, "share"), home: join(base, "home"), bind: "127.0.0.1" });
  onCleanup(t, () => host.close());
  const client = await TeleportClient.connect(host.url);

  const [first, second] = await Promise.all([client.ping(), client.ping()]);

  for (const rtt of [first, second]) assert.ok(rtt > 0 && rtt < 5000, `round trip of ${rtt} ms`);
  await client.close();
  await assert.rejects(client.ping(), { code: "TELEPORT_ERR_CONNECTION" });
});

test("a host destroyed and then closed lets each of its descriptors go once", async (t) => {
  const base = await tempDir(t, "destroy-close");
  await mkdir(join(base, "share"));
  const host = await Host.start({ root: join(base, "share"), home: join(base, "home"), bind: "127.0.0.1" });
  const client = await TeleportClient.connect(host.url);
  onCleanup(t, () => client.destroy());

  host.destroy();
  // The numbers destroy freed go to the next files opened (the lowest free number first), as they
  // would go to another thread's sockets: a second close of any of them would close one of these.
  const opened = Array.from({ length: 32 }, () => openSync(join(base, "share"), "r"));
  onCleanup(t, () => {
    for (const fd of opened) closeSync(fd);
  });
  await host.close();

  for (const fd of opened) assert.doesNotThrow(() => fstatSync(fd), `descriptor ${fd} was closed under us`);
});

test("a host closed holds nothing open of its share or its home", async (t) => {
  const base = await tempDir(t, "host-descriptors");
  const share = join(base, "share");
  await mkdir(share);
  await writeFile(join(share, "a.txt"), "a\n");
  const home = join(base, "home");
  for (const end of ["close", "destroy"] as const) {
    const host = await Host.start({ root: share, home, bind: "127.0.0.1", uploads: uploadReceiver() });
    const client = await TeleportClient.connect(host.url);
    await pull(client, { dest: join(base, `dest-${end}`) });
    await client.close();
    if (end === "close") await host.close();
    else host.destroy();
    assert.deepEqual(await heldOpenBeneath(share, home), [], `after ${end}`);
  }
});
