/**
 * The data a benchmark moves: random (incompressible, so no tool wins by compressing) files,
 * created once and reused across invocations, and the check that a copy is byte-identical.
 */
import { createHash, randomFillSync } from "node:crypto";
import { mkdirSync, renameSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { dirname, join } from "node:path";

export interface Payload {
  path: string;
  bytes: number;
  sha256: string;
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
  return { path, bytes, sha256: await sha256OfFile(path) };
}

function fileSize(path: string): number | null {
  try {
    return statSync(path).size;
  } catch {
    return null;
  }
}

async function writeRandomFile(path: string, bytes: number): Promise<void> {
  const block = Buffer.allocUnsafe(16 << 20);
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

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  const block = Buffer.allocUnsafe(4 << 20);
  const file = await open(path, "r");
  try {
    for (;;) {
      const { bytesRead } = await file.read(block, 0, block.length, null);
      if (bytesRead === 0) break;
      hash.update(block.subarray(0, bytesRead));
    }
  } finally {
    await file.close();
  }
  return hash.digest("hex");
}

/** Throws unless `copyPath` has the payload's size and SHA-256. */
export async function assertIdenticalCopy(copyPath: string, payload: Payload): Promise<void> {
  const size = fileSize(copyPath);
  if (size === null) throw new Error(`copy missing: ${copyPath}`);
  if (size !== payload.bytes) {
    throw new Error(`copy has ${size} bytes, source ${payload.bytes}: ${copyPath}`);
  }
  const digest = await sha256OfFile(copyPath);
  if (digest !== payload.sha256) {
    throw new Error(`copy differs from source (sha256 ${digest} != ${payload.sha256}): ${copyPath}`);
  }
}
