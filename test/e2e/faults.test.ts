/**
 * Pulls that go wrong: bytes corrupted by the host, a host killed in the middle of a transfer,
 * a host that is not there. Each must fail with its typed error and leave no file behind, not
 * even a partial one.
 */
import assert from "node:assert/strict";
import { randomFillSync } from "node:crypto";
import { mkdir, open, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { TeleportClient } from "../../src/client/client.js";
import { pull } from "../../src/client/pull.js";
import { ErrorCode, TeleportError } from "../../src/errors.js";
import { Host } from "../../src/host/host.js";
import type { ChunkRequest } from "../../src/wire/messages.js";
import { runCli, STACK_TRACE_LINE, spawnCli, startHost } from "../helpers/cli.js";
import { onCleanup, tempDir, waitFor } from "../helpers/context.js";
import { findPartFiles, isAbsent, MiB, pseudoRandomBytes } from "../helpers/tree.js";

test("a chunk corrupted by the host fails the pull with TELEPORT_ERR_CHUNK_CORRUPT and leaves nothing", async (t) => {
  const base = await tempDir(t, "corrupt");
  const share = join(base, "share");
  const dest = join(base, "dest");
  await mkdir(share);
  await writeFile(join(share, "four-mib.bin"), pseudoRandomBytes(4 * MiB, "corrupt"));
  const corrupted: ChunkRequest[] = [];
  const host = await Host.start({
    root: share,
    home: join(base, "host-home"),
    bind: "127.0.0.1",
    port: 0,
    faults: {
      corruptChunk: (request, data) => {
        if (corrupted.length === 0 && request.offset > 0) {
          data[0] = (data[0] as number) ^ 1;
          corrupted.push(request);
        }
      },
    },
  });
  onCleanup(t, () => host.close());
  const client = await TeleportClient.connect(host.url);
  onCleanup(t, () => client.close());

  await assert.rejects(pull(client, { dest }), (err: unknown) => {
    assert.ok(err instanceof TeleportError, `expected a TeleportError, got ${String(err)}`);
    assert.equal(err.code, ErrorCode.CHUNK_CORRUPT, err.message);
    return true;
  });

  assert.equal(corrupted.length, 1, "the fault should have hit the chunk at 1 MiB exactly once");
  assert.ok(await isAbsent(join(dest, "four-mib.bin")), "a file with a corrupt chunk must not be committed");
  assert.deepEqual(await findPartFiles(dest), [], "temporary files must be removed");
});

/** Writes `size` bytes of fresh random data in 16 MiB pieces (incompressible, never deduplicable). */
async function writeRandomFile(path: string, size: number): Promise<void> {
  const piece = Buffer.allocUnsafe(16 * MiB);
  const handle = await open(path, "w");
  try {
    for (let written = 0; written < size; written += piece.length) {
      const length = Math.min(piece.length, size - written);
      randomFillSync(piece, 0, length);
      await handle.write(piece, 0, length, written);
    }
  } finally {
    await handle.close();
  }
}

test("a host killed mid-pull makes the pull fail with a connection error and leaves no partial file", async (t) => {
  const base = await tempDir(t, "killed");
  const share = join(base, "share");
  const dest = join(base, "dest");
  await mkdir(share);
  await writeRandomFile(join(share, "large.bin"), 512 * MiB);
  const host = await startHost(share, { home: join(base, "host-home") });
  onCleanup(t, () => host.stop());

  const puller = spawnCli(["pull", host.link, dest, "--no-progress"], {
    TELEPORT_HOME: join(base, "client-home"),
  });
  let pullExited = false;
  puller.result.then(
    () => {
      pullExited = true;
    },
    () => {},
  );
  onCleanup(t, async () => {
    if (!pullExited) puller.process.kill("SIGKILL");
    await puller.result.catch(() => {});
  });

  await waitFor(
    async () => {
      if (pullExited) throw new Error(`pull exited before the host was killed: ${puller.stderr()}`);
      return (await findPartFiles(dest)).length > 0;
    },
    { what: "the pull to start writing large.bin", timeoutMs: 20_000, intervalMs: 5 },
  );
  host.process.kill("SIGKILL");
  await host.exited;
  const killedAt = Date.now();

  const timer = setTimeout(() => puller.process.kill("SIGKILL"), 35_000);
  const result = await puller.result.finally(() => clearTimeout(timer));
  const seconds = (Date.now() - killedAt) / 1000;

  assert.equal(
    result.signal,
    null,
    `pull did not exit within 35 s of the host's death (${seconds.toFixed(1)} s)`,
  );
  assert.ok(seconds <= 35, `pull took ${seconds.toFixed(1)} s to notice the host was gone`);
  assert.notEqual(result.code, 0, "pull must fail when its host dies");
  assert.match(result.stderr, /TELEPORT_ERR_(CONNECTION|TIMEOUT)/);
  assert.doesNotMatch(result.stderr, STACK_TRACE_LINE, "the CLI must not print a stack trace");
  assert.ok(await isAbsent(join(dest, "large.bin")), "an incomplete file must not be committed");
  assert.deepEqual(await findPartFiles(dest), [], "temporary files must be removed");
});

test("pulling from a link whose host is not running fails fast with TELEPORT_ERR_CONNECTION", async (t) => {
  const base = await tempDir(t, "no-host");
  const share = join(base, "share");
  const dest = join(base, "dest");
  await mkdir(share);
  await writeFile(join(share, "a.txt"), "hello\n");
  const host = await startHost(share, { home: join(base, "host-home") });
  await host.stop();
  const started = Date.now();

  const result = await runCli(["pull", host.link, dest, "--no-progress"], {
    TELEPORT_HOME: join(base, "client-home"),
  });

  const seconds = (Date.now() - started) / 1000;
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /TELEPORT_ERR_CONNECTION/);
  assert.doesNotMatch(result.stderr, STACK_TRACE_LINE);
  assert.ok(seconds < 5, `refused connection took ${seconds.toFixed(1)} s to report`);
  assert.ok((await isAbsent(dest)) || (await readdir(dest)).length === 0, "nothing may be written");
});
