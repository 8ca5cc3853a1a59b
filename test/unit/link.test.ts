import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { ErrorCode, isTeleportError } from "../../src/errors.js";
import { formatLink, parseLink } from "../../src/transport/link.js";

describe("share links", () => {
  it("round-trips IPv4, IPv6 and host names", () => {
    for (const host of ["127.0.0.1", "::1", "files.example.org"]) {
      const link = { host, port: 4242, fingerprint: randomBytes(32), secret: randomBytes(16) };
      assert.deepEqual(parseLink(formatLink(link)), link);
    }
  });

  it("round-trips a write link's marker, which a read link does not have", () => {
    const read = { host: "127.0.0.1", port: 4242, fingerprint: randomBytes(32), secret: randomBytes(16) };
    const write = { ...read, secret: randomBytes(16), write: true };
    assert.deepEqual(parseLink(formatLink(write)), write);
    assert.match(formatLink(write), /&write=1$/);
    assert.equal(parseLink(formatLink(read)).write, undefined);
  });

  it("refuses malformed links with BAD_LINK", () => {
    const good = formatLink({
      host: "127.0.0.1",
      port: 1,
      fingerprint: randomBytes(32),
      secret: randomBytes(16),
    });
    const bad = [
      "",
      "not a link",
      good.replace("teleport:", "https:"),
      good.replace(":1/", "/"),
      good.replace(/fp=[^&]+/, "fp=abc"),
      good.replace(/&key=.*/, ""),
      good.replace(/key=.*/, "key=short"),
    ];
    for (const text of bad) {
      assert.throws(
        () => parseLink(text),
        (err) => isTeleportError(err, ErrorCode.BAD_LINK),
        text,
      );
    }
  });
});
