/**
 * What would an upgrade of a tree move under each way of sending small edits? For every file of
 * NEW that differs from the file at the same path in OLD (and every new file), this counts the
 * bytes fetched as whole content-defined chunks (today's 16/64/256 KiB, and smaller sizes for
 * files under 1 MiB), as rsync-style deltas with three smallest block sizes (literals, their zstd
 * size with the scripts, and the signatures sent up), and as `zstd --patch-from` (which needs
 * the old bytes on the host). See docs/decisions.md, "Which option: rsync-style delta".
 *
 *   node dist/bench/micro/delta-options.js --old OLD_TREE --new NEW_TREE
 */
import { execFileSync } from "node:child_process";
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type Chunker, ContentDefinedChunker } from "../../src/chunking/chunker.js";
import { hashBytes } from "../../src/chunking/hash.js";
import { Compressor, compressBound } from "../../src/compression/zstd.js";
import { matchBlocks } from "../../src/delta/match.js";
import { OP_BYTES } from "../../src/delta/script.js";
import { MAX_BLOCK_BYTES, MAX_SIGNATURE_BLOCKS, sign } from "../../src/delta/signature.js";

const { values } = parseArgs({ options: { old: { type: "string" }, new: { type: "string" } } });
const oldTree = values.old ?? "";
const newTree = values.new ?? "";
if (oldTree === "" || newTree === "") throw new Error("--old and --new trees are needed");

function* files(root: string, folder = ""): Generator<string> {
  for (const entry of readdirSync(join(root, folder), { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) yield* files(root, path);
    else if (entry.isFile()) yield path;
  }
}

interface Piece {
  offset: number;
  data: Buffer;
}

function cut(data: Buffer, chunker: Chunker): Piece[] {
  const pieces: Piece[] = [];
  for (let at = 0; at < data.length; ) {
    const length = chunker.nextChunkLength(data.subarray(at), true);
    pieces.push({ offset: at, data: data.subarray(at, at + length) });
    at += length;
  }
  return pieces;
}

/** The pieces of `next` whose hash `old`, cut the same way, does not have. */
function missing(old: Buffer, next: Buffer, chunker: Chunker): Piece[] {
  const held = new Set(cut(old, chunker).map((piece) => hashBytes(piece.data).toString("hex")));
  return cut(next, chunker).filter((piece) => !held.has(hashBytes(piece.data).toString("hex")));
}

const compressor = new Compressor();
function zstdSize(data: Buffer): number {
  if (data.length < 64) return data.length;
  return Math.min(data.length, compressor.compress(Buffer.allocUnsafe(compressBound(data.length)), data, 3));
}

/** The delta-fetcher's window and block size, with `minBlock` as the smallest block. */
function deltaOf(old: Buffer, piece: Piece, minBlock: number): { literal: number; down: number; up: number } {
  const size = piece.data.length;
  const whole = old.length <= 256 * 1024;
  const window = old.subarray(
    whole ? 0 : Math.max(0, piece.offset - size),
    whole ? old.length : piece.offset + 2 * size,
  );
  if (size < 1024 || window.length < 512) return { literal: size, down: zstdSize(piece.data), up: 0 };
  const root = Math.ceil(Math.sqrt(window.length) / 64) * 64;
  const blockSize = Math.min(
    MAX_BLOCK_BYTES,
    Math.max(minBlock, root, Math.ceil(window.length / MAX_SIGNATURE_BLOCKS)),
  );
  const signature = sign(window, blockSize);
  const delta = matchBlocks(piece.data, signature);
  const down = zstdSize(Buffer.concat(delta.literals)) + delta.ops.length * OP_BYTES;
  return { literal: delta.literalBytes, down, up: signature.entries.length };
}

const defaults = new ContentDefinedChunker();
const smaller = {
  "4/16/64 KiB": new ContentDefinedChunker({ min: 4096, avg: 16384, max: 65536 }),
  "2/8/32 KiB": new ContentDefinedChunker({ min: 2048, avg: 8192, max: 32768 }),
};
const totals: Record<string, number> = {
  changedFiles: 0,
  newFiles: 0,
  newFileBytes: 0,
  "cdc 16/64/256 KiB": 0,
};
const scratch = mkdtempSync(join(tmpdir(), "delta-options-"));
for (const path of files(newTree)) {
  const next = readFileSync(join(newTree, path));
  let old: Buffer;
  try {
    if (!lstatSync(join(oldTree, path)).isFile()) throw new Error("not a file");
    old = readFileSync(join(oldTree, path));
  } catch {
    totals.newFiles = (totals.newFiles ?? 0) + 1;
    totals.newFileBytes = (totals.newFileBytes ?? 0) + next.length;
    continue;
  }
  if (old.equals(next)) continue;
  const add = (key: string, bytes: number) => {
    totals[key] = (totals[key] ?? 0) + bytes;
  };
  add("changedFiles", 1);
  const changed = missing(old, next, defaults);
  add(
    "cdc 16/64/256 KiB",
    changed.reduce((sum, piece) => sum + piece.data.length, 0),
  );
  for (const [name, chunker] of Object.entries(smaller)) {
    const pieces = missing(old, next, next.length < 1024 * 1024 ? chunker : defaults);
    add(
      `cdc ${name} (files < 1 MiB)`,
      pieces.reduce((sum, piece) => sum + piece.data.length, 0),
    );
  }
  for (const minBlock of [256, 512, 1024]) {
    for (const piece of changed) {
      const { literal, down, up } = deltaOf(old, piece, minBlock);
      add(`delta >=${minBlock} B: literal`, literal);
      add(`delta >=${minBlock} B: zstd literals and scripts down`, down);
      add(`delta >=${minBlock} B: signatures up`, up);
    }
  }
  writeFileSync(join(scratch, "old"), old);
  writeFileSync(join(scratch, "new"), next);
  const patch = execFileSync(
    "zstd",
    ["-q", "-3", `--patch-from=${join(scratch, "old")}`, "-c", join(scratch, "new")],
    {
      stdio: ["ignore", "pipe", "ignore"],
    },
  );
  add("zstd --patch-from (old bytes on the host)", patch.length);
}
rmSync(scratch, { recursive: true });
console.log(JSON.stringify(totals, null, 1));
