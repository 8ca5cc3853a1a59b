/**
 * The destination's pure policies: a symlink target walked against what is on disk
 * (symlink-target.ts), and blocks reserved as data arrives within a pull's allowance
 * (reservation.ts), and part-file names (part-names.ts).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ErrorCode, TeleportError } from "../../src/errors.js";
import { partFileWriter, partNameFor } from "../../src/receive/part-names.js";
import { FileReservation, ReservationBudget } from "../../src/receive/reservation.js";
import { checkSymlinkTarget, type NameKind } from "../../src/receive/symlink-target.js";

const MiB = 1024 * 1024;

/** A destination holding these names (by '/'-joined components); anything else is missing. */
function disk(kinds: Record<string, NameKind>) {
  return (components: readonly string[]) => kinds[components.join("/")] ?? "missing";
}

function refused(at: string[], target: string, kinds: Record<string, NameKind>): boolean {
  try {
    checkSymlinkTarget("link", at, target, disk(kinds));
    return false;
  } catch (err) {
    assert.ok(err instanceof TeleportError && err.code === ErrorCode.PATH_ESCAPE);
    return true;
  }
}

test("a symlink target: .. only after real folders, never past the destination", () => {
  assert.equal(refused(["a"], "..", {}), false);
  assert.equal(refused(["a"], "../..", {}), true);
  assert.equal(refused(["a"], "/etc/passwd", {}), true);
  assert.equal(refused(["a"], "b/../c", { "a/b": "folder" }), false);
  // a/s -> .. is a symlink of this pull: s/.. is the parent of the destination.
  assert.equal(refused(["a"], "s/..", { "a/s": "own-symlink" }), true);
  assert.equal(refused(["a"], "s/x/y", { "a/s": "own-symlink" }), false);
  // Not there yet: it could become a symlink later, so no .. after it.
  assert.equal(refused(["a"], "later/../x", {}), true);
  // A symlink the pull did not make, or a file: not gone through.
  assert.equal(refused(["a"], "old/x", { "a/old": "other" }), true);
});

test("reservations follow the data: at most the allowance ahead, refilled as bytes are written", () => {
  const budget = new ReservationBudget(64 * MiB);
  const reserved: Array<[number, number]> = [];
  const file = new FileReservation(budget, (offset, length) => reserved.push([offset, length]));
  const chunks = Array.from({ length: 256 }, (_, i) => ({
    offset: i * 4 * MiB,
    size: 4 * MiB,
    hash: Buffer.alloc(32),
  }));
  file.announce(chunks);
  assert.deepEqual(reserved, [[0, 64 * MiB]]);
  file.written(8 * MiB); // less than a slice freed: no call
  assert.equal(reserved.length, 1);
  file.written(8 * MiB);
  assert.deepEqual(reserved.at(-1), [64 * MiB, 16 * MiB]);
  file.release();
  assert.equal(budget.ahead, 0);
});

test("part-file names are distinct for one name, and say which process writes them", () => {
  const names = new Set(Array.from({ length: 1000 }, () => partNameFor("data.bin")));
  assert.equal(names.size, 1000);
  for (const name of names) {
    assert.match(name, /^\.data\.bin\..+\.teleport-part$/);
    assert.equal(partFileWriter(name), process.pid);
  }
  // Leftovers named by earlier versions, with no counter, are still recognised.
  assert.equal(partFileWriter(".data.bin.4242-0123456789ab.teleport-part"), 4242);
  assert.equal(partFileWriter("data.bin"), undefined);
  assert.equal(partFileWriter(".data.bin.4242-xyz.teleport-part"), undefined);
});
