/**
 * The versions of the dedup benchmarks' file, side by side in one share (old/, insert/,
 * rewrite/): a 1 GiB random file (quick: 128 MiB), the same with one byte inserted at the start,
 * and with 10% rewritten in place in 1 MiB patches at random spots.
 */
import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ensureRandomFile, type Payload, treeDigest } from "../lib/payload.js";
import type { BenchContext } from "../lib/types.js";

export const MiB = 1024 * 1024;
const PATCH_BYTES = MiB;

export type Version = "old" | "insert" | "rewrite";

/** The share: the same file name in one folder per version. */
export interface Versions {
  root: string;
  bytes: number;
  payload: Record<Version, Payload>;
}

/** Creates the versions once (a marker names the old version's digest) and reuses them after. */
export async function prepareVersions(context: BenchContext): Promise<Versions> {
  const bytes = (context.quick ? 128 : 1024) * MiB;
  const root = join(context.workDir, `dedup-${bytes / MiB}m`);
  const old = await ensureRandomFile(join(root, "old", "data.bin"), bytes);
  const marker = join(root, "versions.json");
  const layout = JSON.stringify({ old: old.digest, patchBytes: PATCH_BYTES, share: 0.1 });
  if (!existsSync(marker) || readFileSync(marker, "utf8") !== layout) {
    await writeVersion(join(root, "insert", "data.bin"), async (out) => {
      await out.write(Buffer.from("!"), 0, 1, 0);
      await copyInto(old.path, out, 1);
    });
    await writeVersion(join(root, "rewrite", "data.bin"), async (out) => {
      await copyInto(old.path, out, 0);
      // A fixed seed: the same spots every time the versions are made.
      let seed = 0x5eed;
      const next = () => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return seed;
      };
      const slots = bytes / PATCH_BYTES;
      const chosen = new Set<number>();
      while (chosen.size < Math.round(slots * 0.1)) chosen.add(next() % slots);
      const patch = Buffer.alloc(PATCH_BYTES);
      for (const slot of chosen) {
        for (let i = 0; i < patch.length; i += 4) patch.writeUInt32LE(next(), i);
        await out.write(patch, 0, patch.length, slot * PATCH_BYTES);
      }
    });
    writeFileSync(marker, layout);
  }
  // Each version a minute newer than the one before: made within one second, they had the same
  // mtime to the second, and rsync's quick check (size and whole-second mtime) skipped the new
  // version and kept the old bytes.
  const { atime, mtimeMs } = statSync(old.path);
  utimesSync(join(root, "insert", "data.bin"), atime, new Date(mtimeMs + 60_000));
  utimesSync(join(root, "rewrite", "data.bin"), atime, new Date(mtimeMs + 120_000));
  return {
    root,
    bytes,
    payload: { old, insert: await filePayload(root, "insert"), rewrite: await filePayload(root, "rewrite") },
  };
}

async function writeVersion(path: string, fill: (out: FileHandle) => Promise<void>): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.tmp`;
  const out = await open(temp, "w");
  try {
    await fill(out);
  } finally {
    await out.close();
  }
  renameSync(temp, path);
}

async function copyInto(source: string, out: FileHandle, at: number): Promise<void> {
  const input = await open(source, "r");
  const buffer = Buffer.allocUnsafe(8 * MiB);
  try {
    for (let offset = 0; ; ) {
      const { bytesRead } = await input.read(buffer, 0, buffer.length, offset);
      if (bytesRead === 0) return;
      await out.write(buffer, 0, bytesRead, at + offset);
      offset += bytesRead;
    }
  } finally {
    await input.close();
  }
}

async function filePayload(root: string, version: Version): Promise<Payload> {
  const path = join(root, version, "data.bin");
  return {
    root: dirname(path),
    name: "data.bin",
    path,
    bytes: statSync(path).size,
    files: 1,
    digest: await treeDigest(path),
  };
}
