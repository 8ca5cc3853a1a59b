/**
 * Faults injected into an in-process host: a chunk whose bytes the host corrupts fails the pull
 * with its typed error and leaves no file behind, not even a partial one. (Faults of real
 * processes, kills, stalls and full disks, are in test/e2e/faults.test.ts.)
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { TeleportClient } from "../../src/client/client.js";
import { pull } from "../../src/client/pull.js";
import { ErrorCode, TeleportError } from "../../src/errors.js";
import type { ChunkRequest } from "../../src/wire/messages.js";
import { onCleanup } from "../helpers/context.js";
import { hostInProcess, makeShare } from "../helpers/share.js";
import { findPartFiles, isAbsent, MiB, pseudoRandomBytes } from "../helpers/tree.js";

test("a chunk corrupted by the host fails the pull with TELEPORT_ERR_CHUNK_CORRUPT and leaves nothing", async (t) => {
  const { base, share } = await makeShare(t, "corrupt");
  const dest = join(base, "dest");
  await writeFile(join(share, "four-mib.bin"), pseudoRandomBytes(4 * MiB, "corrupt"));
  const corrupted: ChunkRequest[] = [];
  const host = await hostInProcess(t, {
    base,
    share,
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
