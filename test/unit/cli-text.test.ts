/**
 * The CLI's strict parsers and its output escaping, as pure functions: `--expire`'s durations,
 * and the escaping every printed line and --json line goes through.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseDuration } from "../../src/cli/duration.js";
import { escapeControls, jsonLine, terminalLine } from "../../src/cli/terminal-text.js";

test("durations: whole numbers with units, largest first; anything else is refused", () => {
  assert.equal(parseDuration("45s"), 45_000);
  assert.equal(parseDuration("10m"), 600_000);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("7d"), 7 * 86_400_000);
  assert.equal(parseDuration("1d2h3m4s"), 86_400_000 + 7_200_000 + 180_000 + 4000);
  for (const bad of ["", "0s", "10", "1.5h", "30m1h", "5 minutes", "-1s", "1h 30m", "1H", "s", "1e3s"])
    assert.equal(parseDuration(bad), undefined, JSON.stringify(bad));
});

test("every control a terminal acts on is escaped; other text is left as it is", () => {
  assert.equal(escapeControls("a\u001b[2Jb"), "a\\x1b[2Jb");
  assert.equal(escapeControls("line\nfake\rx\ty"), "line\\x0afake\\x0dx\\x09y");
  assert.equal(escapeControls("\u007f\u0080\u009b"), "\\x7f\\x80\\x9b");
  assert.equal(escapeControls("\u202egpj.exe\u2066\u200f"), "\\u202egpj.exe\\u2066\\u200f");
  assert.equal(escapeControls("photos/été 2024 — 日本.jpg"), "photos/été 2024 — 日本.jpg");
  assert.equal(terminalLine("a\nb"), "a\\x0ab\n");
});

test("jsonLine escapes what JSON.stringify leaves raw and parses back to the same value", () => {
  const value = { path: "x\u001b\u007f\u009b\u202e\u2069y", n: 1 };
  const line = jsonLine(value);
  assert.ok(line.endsWith("\n"));
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for
  assert.doesNotMatch(line.slice(0, -1), /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
  assert.deepEqual(JSON.parse(line), value);
});
