/**
 * The pure parts of the real-tree benchmark: reading `rsync --stats`, finding a cached .deb,
 * picking releases from `apt-cache madison`, and the check that a newer release pulled into an
 * old copy holds every file of the newer one.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { findDebName, newestTwoVersions } from "../../bench/lib/debian-tree.js";
import { assertCopyHolds, treeDigest } from "../../bench/lib/payload.js";
import { parseRsyncStats } from "../../bench/lib/rsync-stats.js";

/** As rsync 3.5.0 prints it for a daemon pull into an old copy. */
const RSYNC_STATS = `
Number of files: 78,629 (reg: 73,101, dir: 5,472, link: 56)
Number of created files: 7 (reg: 7)
Number of deleted files: 0
Number of regular files transferred: 73,101
Total file size: 1,364,012,541 bytes
Total transferred file size: 1,364,012,541 bytes
Literal data: 4,690,112 bytes
Matched data: 1,359,322,429 bytes
File list size: 1,638,402
File list generation time: 0.001 seconds
File list transfer time: 0.000 seconds
Total bytes sent: 9,876,543
Total bytes received: 7,654,321

sent 9,876,543 bytes  received 7,654,321 bytes  5,000,000.00 bytes/sec
total size is 1,364,012,541  speedup is 78.12
`;

test("rsync --stats: literal and matched data, and the totals each way, thousands separators and all", () => {
  assert.deepEqual(parseRsyncStats(RSYNC_STATS), {
    literalBytes: 4_690_112,
    matchedBytes: 1_359_322_429,
    bytesReceived: 7_654_321,
    bytesSent: 9_876_543,
  });
});

test("rsync output without --stats is refused rather than read as zero bytes", () => {
  assert.throws(
    () => parseRsyncStats("sent 1,234 bytes  received 5,678 bytes  1.00 bytes/sec\n"),
    /Literal data/,
  );
  const withoutTotals = RSYNC_STATS.replace(/^Total bytes received.*$/m, "");
  assert.throws(() => parseRsyncStats(withoutTotals), /Total bytes received/);
});

test("a cached .deb is found by package and exact version, an epoch's colon as apt-get writes it", () => {
  const names = [
    "linux-source-6.1_6.1.192-3_all.deb",
    "linux-source-6.1_6.1.190-1_all.deb",
    "linux-source-6.1_6.1.190-10_all.deb",
    "thunderbird_1%3a153.8.0esr-1~deb12u1_amd64.deb",
    "dl.log",
  ];
  assert.equal(findDebName(names, "linux-source-6.1", "6.1.190-1"), "linux-source-6.1_6.1.190-1_all.deb");
  assert.equal(
    findDebName(names, "thunderbird", "1:153.8.0esr-1~deb12u1"),
    "thunderbird_1%3a153.8.0esr-1~deb12u1_amd64.deb",
  );
  assert.equal(findDebName(names, "linux-source-6.1", "6.1.176-1"), null);
  assert.equal(findDebName(names, "linux-source-6", "1_6.1.192-3"), null);
});

test("when the pinned releases are gone, the newest two apt-cache madison lists are taken", () => {
  const madison = [
    "linux-source-6.1 |  6.1.192-3 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages",
    "linux-source-6.1 |  6.1.192-3 | http://deb.debian.org/debian-security bookworm-security/main Sources",
    "linux-source-6.1 |  6.1.190-1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages",
    "linux-source-6.1 |  6.1.176-1 | http://deb.debian.org/debian bookworm/main amd64 Packages",
  ].join("\n");
  assert.deepEqual(newestTwoVersions({ ok: true, output: madison }), { old: "6.1.190-1", next: "6.1.192-3" });
  assert.equal(newestTwoVersions({ ok: true, output: madison.split("\n")[0] ?? "" }), null);
  assert.equal(newestTwoVersions({ ok: false, output: madison }), null);
});

test("a newer release pulled into an old copy: extra old files allowed, a stale or missing file is not", async () => {
  const dir = mkdtempSync(join(tmpdir(), "bench-real-tree-"));
  try {
    const next = join(dir, "next", "tree");
    mkdirSync(join(next, "sub"), { recursive: true });
    writeFileSync(join(next, "a.c"), "int a = 2;\n");
    writeFileSync(join(next, "sub", "b.h"), "#define B 2\n");
    const payload = { root: join(dir, "next"), name: "tree", path: next, bytes: 23, files: 2, digest: "" };
    payload.digest = await treeDigest(next);

    const copy = join(dir, "copy");
    mkdirSync(join(copy, "sub"), { recursive: true });
    writeFileSync(join(copy, "a.c"), "int a = 2;\n");
    writeFileSync(join(copy, "sub", "b.h"), "#define B 2\n");
    writeFileSync(join(copy, "removed-in-next.c"), "old\n");
    await assertCopyHolds(copy, payload);

    writeFileSync(join(copy, "sub", "b.h"), "#define B 1\n");
    await assert.rejects(assertCopyHolds(copy, payload), /differs/);
    rmSync(join(copy, "sub", "b.h"));
    await assert.rejects(assertCopyHolds(copy, payload), /lacks sub\/b\.h/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
