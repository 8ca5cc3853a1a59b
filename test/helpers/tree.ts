/**
 * The fixture tree every end-to-end pull runs against, and an exact comparison of two trees:
 * structure, bytes, permission bits, mtimes (to the millisecond) and symlink targets.
 */
import assert from "node:assert/strict";
import { createCipheriv, createHash, randomFillSync } from "node:crypto";
import { createReadStream } from "node:fs";
import { chmod, lstat, mkdir, open, readdir, readlink, symlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const MiB = 1024 * 1024;
/** Range reads come in pieces aligned to this size. */
export const RANGE_PIECE = MiB;

/**
 * Deterministic pseudo-random bytes (AES-CTR keystream of a seed): incompressible, different
 * in every chunk, and the same on every run.
 */
export function pseudoRandomBytes(size: number, seed: string): Buffer {
  const key = createHash("sha256").update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv("aes-128-ctr", key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
}

/** Writes `size` bytes of fresh random data in 16 MiB pieces (incompressible, never deduplicable). */
export async function writeRandomFile(path: string, size: number): Promise<void> {
  const piece = Buffer.allocUnsafe(16 * MiB);
  const handle = await open(path, "w");
  try {
    for (let written = 0; written < size; written += piece.length) {
      const length = Math.min(piece.length, size - written);
      randomFillSync(piece, 0, length);
      await handle.write(piece, 0, length, written);
    }
  } finally {
    await handle.close();
  }
}

/** Source-like text that compresses ~4x, different on every line. */
export function compressibleText(bytes: number, seed: string): Buffer {
  const lines: string[] = [];
  let total = 0;
  for (let i = 0; total < bytes; i++) {
    const line = `export const ${seed}_${i} = computeChecksum(buffer.subarray(${i * 64}, ${i * 64 + 64}), "${seed}");\n`;
    lines.push(line);
    total += line.length;
  }
  return Buffer.from(lines.join("")).subarray(0, bytes);
}

/** The input of the official BLAKE3 test vectors: byte i is i % 251. */
export function blake3VectorInput(size: number): Buffer {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = i % 251;
  return data;
}

/**
 * Official BLAKE3 test vectors (BLAKE3-team/BLAKE3 test_vectors/test_vectors.json, first 32
 * bytes of "hash"), for checking our hashes without trusting the implementation under test.
 */
export const BLAKE3_VECTORS: Record<number, string> = {
  1: "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
  8192: "aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63",
};

/** Names used by the tests; the unicode one mixes accents, CJK and an astral-plane emoji. */
export const FIXTURE = {
  empty: "empty.bin",
  oneByte: "one.bin",
  oneMiB: "one-mib.bin",
  manyChunks: "many-chunks.bin",
  vector: "blake3-vector-8192.bin",
  spaces: "name with spaces.txt",
  unicode: "ünïcødé 文件 🚀.txt",
  private: "private.txt",
  nested: "nested",
  leaf: "nested/deeper/deepest/leaf.txt",
  nestedEmptyFile: "nested/empty-file",
  nestedEmptyDir: "nested/empty-dir",
  nestedSpaces: "nested/dir with spaces/ñandú.bin",
  restricted: "restricted",
  restrictedFile: "restricted/inner.txt",
  linkToFile: "links/to-one",
  linkToDir: "links/to-deeper",
  /** Absolute symlink to a folder outside the share: the host must not serve it. */
  outsideAbsolute: "out",
  /** Relative symlink that climbs out of the share: the host must not serve it. */
  outsideRelative: "links/escape",
} as const;

/** 3.5 MiB + 7 B: four chunks, the last one short. */
export const MANY_CHUNKS_SIZE = 3.5 * MiB + 7;

interface FileSpec {
  path: string;
  content: Buffer;
  mode: number;
}

export interface FixtureInfo {
  root: string;
  /** Relative paths of the symlinks that point outside the share and must never be served. */
  outsideLinks: string[];
  /** Regular files the host serves, with their sizes. */
  files: Map<string, number>;
  totalBytes: number;
}

/** A fixed mtime per entry, in whole milliseconds, far from "now" so a copied mtime is visible. */
function fixedMtimeMs(index: number): number {
  return Date.UTC(2021, 5, 7, 8, 9, 10, 123) + index * 1_001_001;
}

/**
 * Builds the fixture under `root` (which may exist): nested and empty folders, files of 0 B,
 * 1 B, exactly one chunk and several chunks plus a tail, unicode names and names with spaces,
 * a 0o640 file, a 0o750 folder, symlinks inside the share and symlinks pointing out of it.
 */
export async function makeTree(root: string): Promise<FixtureInfo> {
  const files: FileSpec[] = [
    { path: FIXTURE.empty, content: Buffer.alloc(0), mode: 0o644 },
    { path: FIXTURE.oneByte, content: blake3VectorInput(1), mode: 0o644 },
    { path: FIXTURE.oneMiB, content: pseudoRandomBytes(MiB, "one-mib"), mode: 0o644 },
    { path: FIXTURE.manyChunks, content: pseudoRandomBytes(MANY_CHUNKS_SIZE, "many-chunks"), mode: 0o644 },
    { path: FIXTURE.vector, content: blake3VectorInput(8192), mode: 0o644 },
    { path: FIXTURE.spaces, content: Buffer.from("a name with spaces\n"), mode: 0o644 },
    { path: FIXTURE.unicode, content: Buffer.from("ünïcødé contents ✓\n"), mode: 0o644 },
    { path: FIXTURE.private, content: Buffer.from("only the owner and group may read this\n"), mode: 0o640 },
    { path: FIXTURE.leaf, content: Buffer.from("deep leaf\n"), mode: 0o600 },
    { path: FIXTURE.nestedEmptyFile, content: Buffer.alloc(0), mode: 0o644 },
    { path: FIXTURE.nestedSpaces, content: pseudoRandomBytes(4099, "nandu"), mode: 0o755 },
    { path: FIXTURE.restrictedFile, content: Buffer.from("inside a 0750 folder\n"), mode: 0o644 },
  ];
  const dirs = [
    "",
    FIXTURE.nested,
    "nested/deeper",
    "nested/deeper/deepest",
    FIXTURE.nestedEmptyDir,
    "nested/dir with spaces",
    FIXTURE.restricted,
    "links",
  ];
  const dirModes: Record<string, number> = { [FIXTURE.restricted]: 0o750 };

  for (const dir of dirs) await mkdir(join(root, dir), { recursive: true });
  for (const file of files) await writeFile(join(root, file.path), file.content);
  await symlink("../one.bin", join(root, FIXTURE.linkToFile));
  await symlink("../nested/deeper", join(root, FIXTURE.linkToDir));
  await symlink("/etc", join(root, FIXTURE.outsideAbsolute));
  await symlink("../../outside-the-share.txt", join(root, FIXTURE.outsideRelative));

  // Modes and mtimes last, deepest folders last of all: creating an entry changes its folder's mtime.
  let index = 0;
  for (const file of files) {
    await chmod(join(root, file.path), file.mode);
    const mtime = fixedMtimeMs(index++) / 1000;
    await utimes(join(root, file.path), mtime, mtime);
  }
  for (const dir of [...dirs].sort(
    (a, b) => b.split("/").length - a.split("/").length || b.localeCompare(a),
  )) {
    await chmod(join(root, dir), dirModes[dir] ?? 0o755);
    const mtime = fixedMtimeMs(index++) / 1000;
    await utimes(join(root, dir), mtime, mtime);
  }

  const served = new Map(files.map((file) => [file.path, file.content.length]));
  return {
    root,
    outsideLinks: [FIXTURE.outsideAbsolute, FIXTURE.outsideRelative],
    files: served,
    totalBytes: [...served.values()].reduce((sum, size) => sum + size, 0),
  };
}

export type NodeKind = "file" | "dir" | "symlink" | "other";

export interface TreeNode {
  kind: NodeKind;
  size: number;
  /** Permission bits only (& 0o777). */
  mode: number;
  mtimeMs: number;
  /** Symlink target, "" for everything else. */
  target: string;
}

/**
 * Every entry under `root` by '/'-separated relative path ("" is the root itself), without
 * following symlinks. Paths in `ignore` (and anything beneath them) are left out.
 */
export async function snapshotTree(
  root: string,
  options: { ignore?: readonly string[] } = {},
): Promise<Map<string, TreeNode>> {
  const ignore = new Set(options.ignore ?? []);
  const nodes = new Map<string, TreeNode>();
  const visit = async (relative: string): Promise<void> => {
    if (ignore.has(relative)) return;
    const absolute = relative === "" ? root : join(root, relative);
    const stats = await lstat(absolute);
    const kind: NodeKind = stats.isFile()
      ? "file"
      : stats.isDirectory()
        ? "dir"
        : stats.isSymbolicLink()
          ? "symlink"
          : "other";
    nodes.set(relative, {
      kind,
      size: kind === "file" ? stats.size : 0,
      mode: stats.mode & 0o777,
      mtimeMs: stats.mtimeMs,
      target: kind === "symlink" ? await readlink(absolute) : "",
    });
    if (kind === "dir") {
      for (const name of (await readdir(absolute)).sort())
        await visit(relative === "" ? name : `${relative}/${name}`);
    }
  };
  await visit("");
  return nodes;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const piece of createReadStream(path)) hash.update(piece as Buffer);
  return hash.digest("hex");
}

export interface CompareOptions {
  /** Paths under `expected` that must not be compared (they are expected to be absent from `actual`). */
  ignore?: readonly string[];
  /**
   * Compare the mode and mtime of the two roots themselves; default false: a pull leaves its
   * destination folder's own as they were (test/e2e/hostile-host-links.test.ts).
   */
  rootMetadata?: boolean;
}

/** mtimes are compared to the millisecond; 1 ms covers float rounding of sub-ms timestamps. */
const MTIME_TOLERANCE_MS = 1;

/**
 * Asserts that `actual` is an exact copy of `expected`: the same entries with the same kinds,
 * file bytes, permission bits and mtimes (files and folders), and symlink targets.
 */
export async function compareTrees(
  expected: string,
  actual: string,
  options: CompareOptions = {},
): Promise<void> {
  const want = await snapshotTree(expected, options.ignore === undefined ? {} : { ignore: options.ignore });
  const got = await snapshotTree(actual);
  assert.deepEqual(
    [...got.keys()].sort(),
    [...want.keys()].sort(),
    `entries of ${actual} differ from ${expected}`,
  );
  for (const [path, wanted] of want) {
    const found = got.get(path) as TreeNode;
    const where = `"${path || "."}" in ${actual}`;
    assert.equal(found.kind, wanted.kind, `kind of ${where}`);
    if (wanted.kind === "symlink") {
      assert.equal(found.target, wanted.target, `symlink target of ${where}`);
      continue;
    }
    if (path === "" && options.rootMetadata !== true) continue;
    assert.equal(found.mode.toString(8), wanted.mode.toString(8), `permission bits of ${where}`);
    assert.ok(
      Math.abs(found.mtimeMs - wanted.mtimeMs) <= MTIME_TOLERANCE_MS,
      `mtime of ${where}: ${new Date(found.mtimeMs).toISOString()} (${found.mtimeMs}), expected ${new Date(wanted.mtimeMs).toISOString()} (${wanted.mtimeMs})`,
    );
    if (wanted.kind === "file") {
      assert.equal(found.size, wanted.size, `size of ${where}`);
      const [a, b] = await Promise.all([sha256File(join(expected, path)), sha256File(join(actual, path))]);
      assert.equal(b, a, `bytes of ${where}`);
    }
  }
}

/** Relative paths of pull temp files (`*.teleport-part`) anywhere under `dir`; [] if `dir` is missing. */
export async function findPartFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return [] as string[];
    throw err;
  });
  return entries.filter((name) => name.endsWith(".teleport-part"));
}

/** True if nothing exists at `path` (not even a dangling symlink). */
export async function isAbsent(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return false;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return true;
    throw err;
  }
}

/** `lines` lines of C-like source, distinct per `label`: small edits to it are what deltas move. */
export function sourceText(lines: number, label: string): Buffer {
  const out: string[] = [];
  for (let i = 0; i < lines; i++)
    out.push(`int ${label}_${i}(void) { return compute(${(i * 7919) % 1013}); }`);
  return Buffer.from(`${out.join("\n")}\n`);
}
