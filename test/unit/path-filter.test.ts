/**
 * PathFilter reads patterns as rsync does for the rules it takes: first match wins, "/" anchors,
 * a trailing "/" is for folders, `*` stops at "/", `**` crosses it, `dir/**` is what is inside.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode } from "../../src/errors.js";
import { FilterKind, PathFilter } from "../../src/filter/path-filter.js";
import { decodeMessage, encodeWithHeadroom } from "../../src/wire/codec.js";
import { manifestRequestCodec } from "../../src/wire/messages.js";

const exclude = (pattern: string) => ({ kind: FilterKind.EXCLUDE, pattern });
const include = (pattern: string) => ({ kind: FilterKind.INCLUDE, pattern });

describe("PathFilter", () => {
  it("matches names at any depth, anchors with /, and keeps * within a component", () => {
    const filter = PathFilter.compile([exclude("*.o"), exclude("/build"), exclude("a/*")]);
    assert.ok(filter.excludes("x.o", false) && filter.excludes("d/e/x.o", false));
    assert.ok(filter.excludes("build", true) && !filter.excludes("sub/build", true));
    assert.ok(filter.excludes("a/x", false) && filter.excludes("z/a/x", false));
    assert.ok(!filter.excludes("a/x/y", false), "* does not cross /");
    assert.ok(!filter.excludes("x.c", false));
  });

  it("lets the first matching rule decide, a trailing / match folders only, dir/** not dir", () => {
    const filter = PathFilter.compile([include("*.c"), include("*/"), exclude("*")]);
    assert.ok(!filter.excludes("src/x.c", false) && !filter.excludes("src", true));
    assert.ok(filter.excludes("src/x.h", false) && filter.excludes("src", false));
    const inside = PathFilter.compile([exclude("a/b/**")]);
    assert.ok(
      !inside.excludes("a/b", true) && inside.excludes("a/b/c", false) && inside.excludes("a/b/c/d", true),
    );
    assert.ok(PathFilter.compile([exclude(".git/")]).excludes("x/.git", true), "dot names match");
  });

  it("reads ** as rsync: a folder at least between two slashes, none needed before an unanchored name", () => {
    const between = PathFilter.compile([exclude("a/**/b")]);
    assert.ok(
      !between.excludes("a/b", false) &&
        between.excludes("a/x/b", false) &&
        between.excludes("z/a/x/y/b", false),
    );
    const leading = PathFilter.compile([exclude("**/b")]);
    assert.ok(leading.excludes("b", false) && leading.excludes("x/y/b", false));
    const anchored = PathFilter.compile([exclude("/**/b")]);
    assert.ok(
      !anchored.excludes("b", false) && anchored.excludes("x/b", false) && anchored.excludes("x/y/b", false),
    );
  });

  it("answers about wire paths beneath the pulled item's parent, never its top", () => {
    const forRequest = PathFilter.forRequest([exclude("/sub/x")], "sub");
    assert.ok(forRequest?.("sub/x", false));
    assert.ok(!forRequest?.("sub", true));
    assert.equal(PathFilter.forRequest([], ""), undefined);
  });

  it("refuses patterns it does not take, with USAGE", () => {
    for (const pattern of ["", "/", "a/***", "a//b", "../x", "x".repeat(2000)])
      assert.throws(() => PathFilter.compile([exclude(pattern)]), { code: ErrorCode.USAGE }, pattern);
  });

  it("travels as MANIFEST's trailing field, absent for an older client", () => {
    const filters = [exclude("*.o"), include("keep/")];
    const encoded = encodeWithHeadroom(manifestRequestCodec, { credit: 1, path: "p", filters }, 0);
    assert.deepEqual(decodeMessage(manifestRequestCodec, encoded).filters, filters);
    const old = encodeWithHeadroom(manifestRequestCodec, { credit: 1, path: "p" }, 0);
    assert.equal(decodeMessage(manifestRequestCodec, old).filters, undefined);
  });
});
