/**
 * Text on its way to a terminal. Names and error texts come from the network (a host names its
 * files and words its errors), and a terminal obeys the control characters in what it prints:
 * ESC and CSI sequences rewrite the screen or the window title, a carriage return or newline
 * fakes a line, bidi overrides show a name other than the real one. Every line the CLI prints
 * goes through `terminalLine` (or `jsonLine` for --json), which shows such characters as
 * escapes instead.
 */

/**
 * C0 controls (newline and tab too: each printed line is one line), DEL, C1 controls, and the
 * bidi embeddings, overrides, isolates and marks (U+200E/F, U+202A-E, U+2066-9).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it escapes
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
/** What JSON.stringify leaves raw of the above: it escapes only U+0000-U+001F. */
const CONTROL_JSON_LEAVES = /[\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** `text` with every control character shown as `\xHH` (or `\uHHHH`), safe to print as one line. */
export function escapeControls(text: string): string {
  return text.replace(CONTROL, (char) => {
    const code = char.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16)}`;
  });
}

/** One line of output, escaped, with its newline. */
export function terminalLine(line: string): string {
  return `${escapeControls(line)}\n`;
}

/**
 * One line of JSON: JSON.stringify's output, with the controls it leaves raw written as \u
 * escapes. Those only occur inside strings, so the line parses to the same value.
 */
export function jsonLine(value: unknown): string {
  const json = JSON.stringify(value).replace(
    CONTROL_JSON_LEAVES,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return `${json}\n`;
}
