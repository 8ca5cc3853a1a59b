/**
 * The data a benchmark moves: random (incompressible, so no tool wins by compressing) files and
 * trees, created once and reused across invocations, and the check that a copy is identical.
 */
import { createHash, randomFillSync } from "node:crypto";
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { open, readdir } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

export interface Payload {
  /** The folder every tool's server shares. */
  root: string;
  /** The file or folder inside `root` that is copied; a copy lands as `<dest>/<name>`. */
  name: string;
  /** `root/name`. */
  path: string;
  bytes: number;
  files: number;
  /** SHA-256 over every file's relative path and SHA-256, in path order. */
  digest: string;
}

/** Files of one size in a tree payload. */
export interface FileGroup {
  count: number;
  bytes: number;
}

/**
 * Returns `path` as a random file of exactly `bytes`, creating it if it is missing or of
 * another size. It is written beside its final directory and renamed in, so an interrupted
 * run never leaves a short file to be reused, nor a partial file inside a shared directory.
 */
export async function ensureRandomFile(path: string, bytes: number): Promise<Payload> {
  if (fileSize(path) !== bytes) {
    mkdirSync(dirname(path), { recursive: true });
    const partial = join(dirname(dirname(path)), `.partial-${process.pid}`);
    await writeRandomFile(partial, bytes);
    renameSync(partial, path);
  }
  return { root: dirname(path), name: basename(path), path, bytes, files: 1, digest: await treeDigest(path) };
}

/**
 * Returns `path` as a sparse file of `bytes` with `dataBytes` of random data in `pieces` pieces
 * spread evenly over it, holes between them; made again if its size or data differ.
 */
export async function ensureSparseFile(
  path: string,
  bytes: number,
  dataBytes: number,
  pieces: number,
): Promise<Payload> {
  const layout = JSON.stringify({ bytes, dataBytes, pieces, version: 1 });
  const marker = `${path}.layout`;
  if (fileSize(path) !== bytes || !existsSync(marker) || readFileSync(marker, "utf8") !== layout) {
    rmSync(marker, { force: true });
    mkdirSync(dirname(path), { recursive: true });
    const file = await open(path, "w");
    try {
      const piece = Buffer.allocUnsafe(Math.ceil(dataBytes / pieces));
      for (let i = 0; i < pieces; i++) {
        randomFillSync(piece);
        await file.write(piece, 0, piece.length, Math.floor((i * bytes) / pieces));
      }
      await file.truncate(bytes);
    } finally {
      await file.close();
    }
    writeFileSync(marker, layout);
  }
  return { root: dirname(path), name: basename(path), path, bytes, files: 1, digest: await treeDigest(path) };
}

/**
 * Returns `root/name` as a tree of random files laid out by `groups`, at most `perFolder` files
 * to a folder, nested two levels deep. A marker records the layout it was made with; a tree with
 * another layout, or an interrupted one, is made again.
 */
export async function ensureRandomTree(
  root: string,
  name: string,
  groups: readonly FileGroup[],
  perFolder = 100,
): Promise<Payload> {
  const layout = JSON.stringify({ groups, perFolder, version: 1 });
  const marker = join(root, `.${name}.layout`);
  const tree = join(root, name);
  if (!existsSync(marker) || readFileSync(marker, "utf8") !== layout) {
    rmSync(marker, { force: true });
    rmSync(tree, { recursive: true, force: true });
    let index = 0;
    for (const group of groups) {
      for (let i = 0; i < group.count; i++, index++) {
        const folder = Math.floor(index / perFolder);
        const dir = join(tree, `d${Math.floor(folder / perFolder)}`, `d${folder % perFolder}`);
        mkdirSync(dir, { recursive: true });
        await writeRandomFile(join(dir, `f${index}-${group.bytes}.bin`), group.bytes);
      }
    }
    writeFileSync(marker, layout);
  }
  const files = groups.reduce((sum, group) => sum + group.count, 0);
  const bytes = groups.reduce((sum, group) => sum + group.count * group.bytes, 0);
  return { root, name, path: tree, bytes, files, digest: await treeDigest(tree) };
}

/**
 * A payload made once by `build` into `root/name`, made again when `layout` changes. `build` may
 * be async (one that runs tools, so that Ctrl-C still cleans up meanwhile).
 */
export async function ensureBuiltTree(
  root: string,
  name: string,
  layout: string,
  build: (path: string) => void | Promise<void>,
): Promise<Payload> {
  const marker = join(root, `.${name}.layout`);
  const path = join(root, name);
  if (!existsSync(marker) || readFileSync(marker, "utf8") !== layout) {
    rmSync(marker, { force: true });
    rmSync(path, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    await build(path);
    writeFileSync(marker, layout);
  }
  let bytes = 0;
  let files = 0;
  for (const entry of readdirSync(path, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    bytes += statSync(join(entry.parentPath ?? entry.path, entry.name)).size;
    files++;
  }
  return { root, name, path, bytes, files, digest: await treeDigest(path) };
}

function fileSize(path: string): number | null {
  try {
    return statSync(path).size;
  } catch {
    return null;
  }
}

async function writeRandomFile(path: string, bytes: number): Promise<void> {
  const block = Buffer.allocUnsafe(Math.min(bytes, 16 << 20));
  const file = await open(path, "w");
  try {
    for (let written = 0; written < bytes; ) {
      const length = Math.min(block.length, bytes - written);
      randomFillSync(block, 0, length);
      written += (await file.write(block, 0, length)).bytesWritten;
    }
  } finally {
    await file.close();
  }
}

/**
 * One read buffer for every file, and synchronous calls: a buffer and thread-pool trips per file
 * made checking a tree of many small files slow (docs/decisions.md, "Bench: checking copies").
 */
const readBlock = Buffer.allocUnsafe(4 << 20);

function sha256OfFile(path: string): string {
  const hash = createHash("sha256");
  const fd = openSync(path, "r");
  try {
    for (;;) {
      const bytesRead = readSync(fd, readBlock, 0, readBlock.length, null);
      if (bytesRead === 0) break;
      hash.update(readBlock.subarray(0, bytesRead));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

/** The digest of a file, or of every file under a folder (symlinks and empty folders aside). */
export async function treeDigest(path: string): Promise<string> {
  const digest = createHash("sha256");
  if (statSync(path).isFile()) {
    digest.update(`.\0${sha256OfFile(path)}\n`);
    return digest.digest("hex");
  }
  const names = (await readdir(path, { recursive: true })).sort();
  for (const name of names) {
    const file = join(path, name);
    if (lstatSync(file).isFile()) digest.update(`${name}\0${sha256OfFile(file)}\n`);
  }
  return digest.digest("hex");
}

/**
 * Throws unless every file of the payload is in the copy at `copyPath`, byte for byte; files the
 * copy has beyond them are allowed (a newer release pulled into an old one's copy leaves the
 * files it no longer has: no tool compared deletes them).
 */
export async function assertCopyHolds(copyPath: string, payload: Payload): Promise<void> {
  if (!existsSync(copyPath)) throw new Error(`copy missing: ${copyPath}`);
  const names = (await readdir(payload.path, { recursive: true })).sort();
  const digest = createHash("sha256");
  for (const name of names) {
    if (!lstatSync(join(payload.path, name)).isFile()) continue;
    const file = join(copyPath, name);
    if (!existsSync(file)) throw new Error(`copy lacks ${name}: ${copyPath}`);
    digest.update(`${name}\0${sha256OfFile(file)}\n`);
  }
  if (digest.digest("hex") !== payload.digest)
    throw new Error(`copy differs from source in some of its files: ${copyPath}`);
}

/** Throws unless the copy at `copyPath` holds exactly the payload's files and bytes. */
export async function assertIdenticalCopy(copyPath: string, payload: Payload): Promise<void> {
  if (!existsSync(copyPath)) throw new Error(`copy missing: ${copyPath}`);
  const digest = await treeDigest(copyPath);
  if (digest !== payload.digest) {
    throw new Error(`copy differs from source (digest ${digest} != ${payload.digest}): ${copyPath}`);
  }
}
