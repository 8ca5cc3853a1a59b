/**
 * The data streams connect as soon as the manifest announces a file to write, not once its
 * chunk list has arrived: on a long path their handshakes then overlap the manifest's round
 * trips instead of following them.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { TeleportClient } from "../../src/client/client.js";
import { pull } from "../../src/client/pull.js";
import { onCleanup, tempDir } from "../helpers/context.js";
import {
  dirEntry,
  fileFrames,
  type HostileHost,
  hostile,
  startHostileHost,
} from "../helpers/hostile-host.js";
import { pseudoRandomBytes } from "../helpers/tree.js";

/** How long the manifest waits for a data stream before it goes on without one (the failure case). */
const WAIT_FOR_STREAMS_MS = 10_000;

/** Resolves true once `host` has a connection besides the control connection, false after the wait. */
function dataStreamConnected(host: () => HostileHost): Promise<boolean> {
  return new Promise((resolve) => {
    const giveUp = setTimeout(() => {
      clearInterval(poll);
      resolve(false);
    }, WAIT_FOR_STREAMS_MS);
    const poll = setInterval(() => {
      if (host().connections < 2) return;
      clearInterval(poll);
      clearTimeout(giveUp);
      resolve(true);
    }, 5);
  });
}

test("the data streams connect when the first file to write begins, before its chunk list", async (t) => {
  const base = await tempDir(t, "pool-start");
  const data = pseudoRandomBytes(3 * 1024 * 1024 + 11, "pool-start 3 MiB");
  const [begin, ...rest] = fileFrames("big.bin", data);
  assert.ok(begin !== undefined);
  let connectedEarly: Promise<boolean> | undefined;
  let started: HostileHost | undefined;
  const hostOf = () => {
    assert.ok(started !== undefined);
    return started;
  };
  const script = [
    hostile.entries([dirEntry("")]),
    begin,
    {
      pause: () => {
        connectedEarly = dataStreamConnected(hostOf);
        return connectedEarly.then(() => {});
      },
    },
    ...rest,
  ];
  started = await startHostileHost(join(base, "home"), script, () => data);
  onCleanup(t, () => hostOf().close());
  const client = await TeleportClient.connect(hostOf().link);
  onCleanup(t, () => client.close());
  const dest = join(base, "dest");
  await pull(client, { dest, reuse: "none" });
  assert.equal(await connectedEarly, true, "a data stream connected while the chunk list was held back");
  assert.ok((await readFile(join(dest, "big.bin"))).equals(data));
});
