/**
 * `teleport host --qr` draws the link as a QR code on stderr; without it, where stderr is not a
 * terminal (a log), nothing is drawn, as the link's secret must stay out of logs.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { waitFor } from "../helpers/context.js";
import { hostWithCli, makeShare } from "../helpers/share.js";

/** A line of the drawing: half blocks and spaces only, wider than any address line. */
const QR_LINE = /^[█▀▄ ]{21,}$/m;

test("host --qr draws the link as a QR code on stderr", async (t) => {
  const folder = await makeShare(t, "codes-qr", { "a.txt": "x" });
  const host = await hostWithCli(t, { ...folder, args: ["--qr"] });
  const stderr = await waitFor(() => QR_LINE.test(host.stderr()) && host.stderr(), { what: "the QR code" });
  const lines = stderr.split("\n").filter((line) => QR_LINE.test(line));
  // Version 5 or more for a link: at least 37 modules with the border, two rows a line.
  assert.ok(lines.length >= 18, `${lines.length} lines`);
  assert.ok(lines.every((line) => line.length === lines[0]?.length));
});

test("host without --qr, stderr not a terminal: no QR code", async (t) => {
  const folder = await makeShare(t, "codes-no-qr", { "a.txt": "x" });
  const host = await hostWithCli(t, folder);
  await waitFor(() => /sharing/.test(host.stderr()), { what: "the host's first line on stderr" });
  await host.stop();
  assert.doesNotMatch(host.stderr(), QR_LINE);
});
