/**
 * removeBeneath: names removed relative to folders held open, never through a symlink, what
 * `protect` keeps kept (and the folders holding it), the times of folders removed from kept.
 */
import assert from "node:assert/strict";
import {
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { ErrorCode } from "../../src/errors.js";
import { removeBeneath } from "../../src/platform/remove-beneath.js";
import { onCleanup, tempDir } from "../helpers/context.js";

async function rootWith(t: TestContext, files: string[]) {
  const base = await tempDir(t, "remove-beneath");
  const root = join(base, "root");
  for (const path of files) {
    mkdirSync(join(root, path, ".."), { recursive: true });
    writeFileSync(join(root, path), path);
  }
  mkdirSync(root, { recursive: true });
  const fd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY);
  onCleanup(t, () => closeSync(fd));
  return { base, root, folder: { fd, path: root } };
}

describe("removeBeneath", () => {
  it("removes files and folders with what they hold, but what protect keeps", async (t) => {
    const { root, folder } = await rootWith(t, ["a.txt", "d/x", "d/e/y", "d/keep.o", "f/z"]);
    const protect = (path: string) => path.endsWith(".o");
    const report = removeBeneath(folder, ["a.txt", "d", "f", "missing"], { protect });
    assert.deepEqual(readdirSync(root).sort(), ["d"]);
    assert.deepEqual(readdirSync(join(root, "d")), ["keep.o"]);
    assert.deepEqual(report.removed.sort(), ["a.txt", "d/e", "d/e/y", "d/x", "f", "f/z"]);
    assert.equal(report.failureCount, 0);
  });

  it("says what it would remove, and removes nothing, with dryRun", async (t) => {
    const { root, folder } = await rootWith(t, ["a.txt", "d/x"]);
    const report = removeBeneath(folder, ["a.txt", "d"], { dryRun: true });
    assert.deepEqual(report.removed.sort(), ["a.txt", "d", "d/x"]);
    assert.ok(existsSync(join(root, "a.txt")) && existsSync(join(root, "d/x")));
  });

  it("never goes through a symlink: a folder swapped for one is refused, a symlink named is removed itself", async (t) => {
    const { base, root, folder } = await rootWith(t, ["keep.txt"]);
    const outside = join(base, "outside");
    mkdirSync(join(outside, "inner"), { recursive: true });
    writeFileSync(join(outside, "victim"), "victim");
    symlinkSync(outside, join(root, "sub"));
    const through = removeBeneath(folder, ["sub/victim", "sub/inner"]);
    assert.equal(through.failureCount, 2);
    assert.deepEqual(
      through.failures.map(({ code }) => code),
      [ErrorCode.UNSAFE_NAME, ErrorCode.UNSAFE_NAME],
    );
    assert.equal(through.removedCount, 0);
    const itself = removeBeneath(folder, ["sub"]);
    assert.deepEqual(itself.removed, ["sub"]);
    assert.ok(existsSync(join(outside, "victim")) && existsSync(join(outside, "inner")));
    assert.deepEqual(readdirSync(root), ["keep.txt"]);
    assert.equal(removeBeneath(folder, ["../outside/victim", "/etc/passwd"]).failureCount, 2);
    assert.ok(existsSync(join(outside, "victim")));
  });

  it("names why a path beneath a file or a missing folder is not removed, and removes nothing else", async (t) => {
    const { root, folder } = await rootWith(t, ["file", "d/x"]);
    const report = removeBeneath(folder, ["file/x", "missing/x", "d/gone"]);
    assert.deepEqual(
      report.failures.map(({ path, code }) => [path, code]),
      [
        ["file/x", ErrorCode.UNSAFE_NAME],
        ["missing/x", ErrorCode.NOT_FOUND],
      ],
      "a last name already gone is no failure",
    );
    assert.equal(report.removedCount, 0);
    assert.deepEqual(readdirSync(root).sort(), ["d", "file"]);
    assert.deepEqual(readdirSync(join(root, "d")), ["x"]);
  });

  it("keeps the mtime of the folder it removes from", async (t) => {
    const { root, folder } = await rootWith(t, ["d/x", "d/y"]);
    const old = new Date("2020-01-01T00:00:00Z");
    utimesSync(join(root, "d"), old, old);
    removeBeneath(folder, ["d/x"]);
    assert.equal(statSync(join(root, "d")).mtimeMs, old.getTime());
  });
});
