/** The files a pull committed, the only targets a HARDLINK entry may name. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CommittedFiles } from "../../src/receive/committed-files.js";

test("committed files: each path keeps its own device and inode", () => {
  const committed = new CommittedFiles();
  committed.remember("/d/a", { dev: 7, ino: 100 });
  committed.remember("/d/mnt/b", { dev: 9, ino: 100 });
  committed.remember("/d/c", { dev: 7, ino: 101 });
  assert.deepEqual(committed.identityOf("/d/a"), { dev: 7, ino: 100 });
  assert.deepEqual(committed.identityOf("/d/mnt/b"), { dev: 9, ino: 100 });
  assert.deepEqual(committed.identityOf("/d/c"), { dev: 7, ino: 101 });
  assert.equal(committed.identityOf("/d/never"), undefined);
});

test("committed files: a path committed again takes its new identity, device included", () => {
  const committed = new CommittedFiles();
  committed.remember("/d/a", { dev: 7, ino: 100 });
  committed.remember("/d/b", { dev: 9, ino: 5 });
  committed.remember("/d/b", { dev: 7, ino: 6 });
  committed.remember("/d/a", { dev: 9, ino: 8 });
  assert.deepEqual(committed.identityOf("/d/b"), { dev: 7, ino: 6 });
  assert.deepEqual(committed.identityOf("/d/a"), { dev: 9, ino: 8 });
});
