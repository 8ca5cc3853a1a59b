/**
 * `ls` and `cat`: browsing a share over its control connection. Kept apart from the pull's
 * commands so that they load the client alone, not the pull's machinery and the chunk index
 * (bench/cases/startup.ts times `ls`).
 */
import { TeleportClient } from "../client/client.js";
import { ErrorCode, TeleportError } from "../errors.js";
import { type Entry, EntryKind } from "../wire/messages.js";
import { normalizeUserPath } from "../wire/path.js";
import { writeOut } from "./stdout.js";
import { jsonLine, terminalLine } from "./terminal-text.js";

export async function lsCommand(
  link: string,
  path: string | undefined,
  flags: { json?: boolean; recursive?: boolean },
) {
  const client = await TeleportClient.connect(link);
  try {
    for await (const entry of client.list(normalizeUserPath(path ?? ""), {
      recursive: flags.recursive === true,
    })) {
      await writeOut(flags.json ? jsonLine(entryToJson(entry)) : terminalLine(formatEntry(entry)));
    }
  } finally {
    await client.close();
  }
}

/**
 * A file's bytes from `--offset`, `--length` of them at most: a range running past the end gives
 * the bytes up to the end, one starting past it gives none (as dd and rclone cat do).
 */
export async function catCommand(link: string, path: string, flags: { offset?: number; length?: number }) {
  const client = await TeleportClient.connect(link);
  try {
    const remote = normalizeUserPath(path);
    const entry = await client.stat(remote);
    if (entry.kind !== EntryKind.FILE)
      throw new TeleportError(ErrorCode.NOT_A_FILE, `"${remote}" is not a file`);
    const offset = Math.min(flags.offset ?? 0, entry.size);
    const length = Math.min(flags.length ?? Number.POSITIVE_INFINITY, entry.size - offset);
    if (length === 0) return;
    for await (const piece of client.readRange(remote, offset, length)) await writeOut(piece);
  } finally {
    await client.close();
  }
}

function entryToJson(entry: Entry) {
  const kind =
    entry.kind === EntryKind.FILE ? "file" : entry.kind === EntryKind.DIRECTORY ? "dir" : "symlink";
  return {
    path: entry.path,
    kind,
    size: entry.size,
    mode: entry.mode,
    mtimeMs: entry.mtimeMs,
    ...(entry.kind === EntryKind.SYMLINK ? { target: entry.linkTarget } : {}),
  };
}

function formatEntry(entry: Entry): string {
  const type = entry.kind === EntryKind.DIRECTORY ? "d" : entry.kind === EntryKind.SYMLINK ? "l" : "-";
  const bits = "rwxrwxrwx".split("").map((letter, i) => ((entry.mode >> (8 - i)) & 1 ? letter : "-"));
  const when = new Date(entry.mtimeMs).toISOString().slice(0, 19).replace("T", " ");
  const name = entry.kind === EntryKind.SYMLINK ? `${entry.path} -> ${entry.linkTarget}` : entry.path || ".";
  return `${type}${bits.join("")} ${String(entry.size).padStart(12)} ${when} ${name}`;
}
