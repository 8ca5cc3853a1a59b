/** The library's push: `push()` into a `Host` started with `uploads: uploadReceiver()`. */
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { ChunkIndex, ErrorCode, Host, isTeleportError, push, uploadReceiver } from "../../src/index.js";
import { heldOpenBeneath, onCleanup, tempDir } from "../helpers/context.js";
import { MiB, pseudoRandomBytes } from "../helpers/tree.js";

test("push() uploads into a Host with an upload receiver, and a read link may not", async (t) => {
  const base = await tempDir(t, "push-library");
  const share = join(base, "share");
  await mkdir(share);
  const host = await Host.start({
    root: share,
    home: join(base, "host-home"),
    bind: "127.0.0.1",
    transports: ["tcp"],
    uploads: uploadReceiver({ maxUploadBytes: 8 * MiB }),
  });
  onCleanup(t, () => host.close());
  const index = ChunkIndex.open(join(base, "pusher-home"));
  onCleanup(t, () => index.close());
  const src = join(base, "src");
  await mkdir(src);
  const content = pseudoRandomBytes(2 * MiB, "library");
  await writeFile(join(src, "a.bin"), content);

  assert.ok(host.writeUrl !== undefined);
  const summary = await push({ src, link: host.writeUrl, remotePath: "in", index });
  assert.equal(summary.files, 1);
  assert.equal(summary.bytes, content.length);
  assert.deepEqual(await readFile(join(share, "in", "a.bin")), content);

  await assert.rejects(push({ src, link: host.url, index }), (err) =>
    isTeleportError(err, ErrorCode.READ_ONLY),
  );
  await writeFile(join(src, "b.bin"), pseudoRandomBytes(7 * MiB, "over"));
  await assert.rejects(push({ src, link: host.writeUrl, remotePath: "in", index }), (err) =>
    isTeleportError(err, ErrorCode.QUOTA),
  );
  // Pushed or refused, nothing of SRC is left open.
  assert.deepEqual(await heldOpenBeneath(src), []);
});
