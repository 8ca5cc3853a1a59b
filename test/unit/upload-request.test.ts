/** UPLOAD's codec: the trailing flags and filters of push --delete/--exclude/--dry-run. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode } from "../../src/errors.js";
import { decodeMessage, encodeWithHeadroom } from "../../src/wire/codec.js";
import { FilterKind, UploadFlag, type UploadRequest, uploadRequestCodec } from "../../src/wire/messages.js";

const PLAIN: UploadRequest = { path: "inbox", source: "", bytes: 10, files: 2 };

describe("UPLOAD", () => {
  it("carries flags and filter rules as trailing fields, absent from a plain push", () => {
    const filters = [{ kind: FilterKind.EXCLUDE, pattern: "*.o" }];
    const flags = UploadFlag.DELETE | UploadFlag.DRY_RUN;
    const encoded = encodeWithHeadroom(uploadRequestCodec, { ...PLAIN, flags, filters }, 0);
    assert.deepEqual(decodeMessage(uploadRequestCodec, encoded), { ...PLAIN, flags, filters });
    const plain = encodeWithHeadroom(uploadRequestCodec, PLAIN, 0);
    assert.ok(
      encoded.subarray(0, plain.length).equals(plain),
      "the plain request is the start of the longer one",
    );
    const decoded = decodeMessage(uploadRequestCodec, plain);
    assert.equal(decoded.flags, undefined);
    assert.equal(decoded.filters, undefined);
  });

  it("refuses flags it does not know", () => {
    const encoded = encodeWithHeadroom(uploadRequestCodec, { ...PLAIN, flags: 0x80 }, 0);
    assert.throws(() => decodeMessage(uploadRequestCodec, encoded), { code: ErrorCode.PROTOCOL });
  });
});
