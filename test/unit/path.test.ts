import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode, isTeleportError } from "../../src/errors.js";
import { checkLinkTarget, isWithin, normalizeUserPath, splitWirePath } from "../../src/wire/path.js";

const refusedWith = (code: ErrorCode) => (err: unknown) => isTeleportError(err, code);

describe("wire paths", () => {
  it("accepts ordinary relative paths, unicode and spaces included", () => {
    assert.deepEqual(splitWirePath(""), []);
    assert.deepEqual(splitWirePath("a/b c/été.txt"), ["a", "b c", "été.txt"]);
  });

  it("refuses anything that could leave the root", () => {
    for (const path of ["..", "../x", "a/../../x", "a/..", "/etc/passwd", "/"]) {
      assert.throws(() => splitWirePath(path), refusedWith(ErrorCode.PATH_ESCAPE), path);
    }
  });

  it("refuses empty and dot components, NUL and over-long names", () => {
    for (const path of ["a//b", "a/", "./a", "a/./b", "a\0b", "x".repeat(256), `a/${"y".repeat(5000)}`]) {
      assert.throws(
        () => splitWirePath(path),
        refusedWith(ErrorCode.UNSAFE_NAME),
        JSON.stringify(path.slice(0, 20)),
      );
    }
  });

  it("normalises what users type but still refuses ..", () => {
    assert.equal(normalizeUserPath("/docs//notes/"), "docs/notes");
    assert.equal(normalizeUserPath("./docs"), "docs");
    assert.equal(normalizeUserPath(""), "");
    assert.throws(() => normalizeUserPath("docs/../../etc"), refusedWith(ErrorCode.PATH_ESCAPE));
  });

  it("knows what lies within what", () => {
    assert.ok(isWithin("a/b", "a"));
    assert.ok(isWithin("a", "a"));
    assert.ok(isWithin("anything", ""));
    assert.ok(!isWithin("ab", "a"));
    assert.ok(!isWithin("b/a", "a"));
  });

  it("accepts symlink targets that stay inside and refuses those that leave", () => {
    assert.equal(checkLinkTarget("a/link", "b/c"), "b/c");
    assert.equal(checkLinkTarget("a/link", "../top.txt"), "../top.txt");
    for (const [link, target] of [
      ["link", "../outside"],
      ["a/link", "../../outside"],
      ["a/link", "/etc/passwd"],
      ["a/link", "b/../../../x"],
    ] as const) {
      assert.throws(
        () => checkLinkTarget(link, target),
        refusedWith(ErrorCode.PATH_ESCAPE),
        `${link} -> ${target}`,
      );
    }
  });
});
