/**
 * `teleport demo`: generates a folder, hosts it on loopback in a child process (a real
 * `teleport host`), pulls it with this process, checks every file and prints what moved and how
 * fast. Everything lives in a temporary folder that is removed afterwards.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, open, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { hashBytes, StreamingHash, toHex } from "../chunking/hash.js";
import { TeleportClient } from "../client/client.js";
import { pull } from "../client/pull.js";
import { ErrorCode, TeleportError } from "../errors.js";
import { plural } from "./plural.js";
import { createPullOutput, formatBytes } from "./progress.js";

export async function demoCommand(flags: { sizeMb?: number; keep?: boolean }): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "teleport-demo-"));
  const share = join(work, "share");
  const dest = join(work, "pulled");
  const bigFileBytes = (flags.sizeMb ?? 256) * 1024 * 1024;
  const host = spawn(
    process.execPath,
    [
      fileURLToPath(new URL("./bin.js", import.meta.url)),
      "host",
      share,
      "--port",
      "0",
      "--bind",
      "127.0.0.1",
    ],
    { env: { ...process.env, TELEPORT_HOME: join(work, "home") }, stdio: ["ignore", "pipe", "inherit"] },
  );
  try {
    const files = await generateShare(share, bigFileBytes);
    process.stdout.write(
      `demo: generated ${plural(files.size, "file")} (${formatBytes(bigFileBytes)} + small files) in ${share}\n`,
    );
    const link = await firstLine(host);
    process.stdout.write(`demo: host is sharing it at\n  ${link}\n`);
    const client = await TeleportClient.connect(link);
    const output = createPullOutput({ progress: true, verbose: false, quiet: false });
    const summary = await pull(client, { dest, onProgress: (event) => output.onProgress(event) }).finally(
      () => output.stop(),
    );
    await client.close();
    for (const [path, hash] of files) {
      if ((await hashFile(join(dest, path))) !== hash) {
        throw new TeleportError(ErrorCode.CHUNK_CORRUPT, `demo: ${path} differs after the pull`);
      }
    }
    const rate = summary.bytes / summary.seconds;
    process.stdout.write(
      `demo: pulled ${plural(summary.files, "file")}, ${plural(summary.directories, "folder")}, ` +
        `${plural(summary.symlinks, "symlink")}: ` +
        `${formatBytes(summary.bytes)} in ${summary.seconds.toFixed(2)} s = ${formatBytes(rate)}/s ` +
        `over TLS 1.3, every chunk verified with BLAKE3; all ${plural(files.size, "file")} match\n`,
    );
  } finally {
    host.kill("SIGTERM");
    if (flags.keep) process.stdout.write(`demo: kept ${work}\n`);
    else await rm(work, { recursive: true, force: true });
  }
}

const GENERATE_BLOCK_BYTES = 16 * 1024 * 1024;

/** BLAKE3 of a file's bytes, read in blocks: the demo checks a large file without loading it. */
async function hashFile(path: string): Promise<string> {
  const hash = new StreamingHash();
  for await (const block of createReadStream(path, { highWaterMark: GENERATE_BLOCK_BYTES })) {
    hash.update(block as Buffer);
  }
  return toHex(hash.digest());
}

/** A small tree: one large random file, nested folders of small files, an empty file and folder, a symlink. */
async function generateShare(root: string, bigFileBytes: number): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  const put = async (path: string, data: Buffer) => {
    await writeFile(join(root, path), data);
    hashes.set(path, toHex(hashBytes(data)));
  };
  await mkdir(join(root, "docs", "notes"), { recursive: true });
  await mkdir(join(root, "empty-folder"));
  const big = await open(join(root, "big.bin"), "w");
  const bigHash = new StreamingHash();
  for (let written = 0; written < bigFileBytes; written += GENERATE_BLOCK_BYTES) {
    const piece = randomBytes(Math.min(GENERATE_BLOCK_BYTES, bigFileBytes - written));
    bigHash.update(piece);
    await big.write(piece);
  }
  await big.close();
  hashes.set("big.bin", toHex(bigHash.digest()));
  for (let i = 0; i < 200; i++) {
    await put(join("docs", i % 2 ? "notes" : "", `note ${i}.txt`), Buffer.from(`note ${i}\n`.repeat(50 + i)));
  }
  await put("empty.txt", Buffer.alloc(0));
  await symlink("docs/notes", join(root, "notes-link"));
  return hashes;
}

function firstLine(child: ReturnType<typeof spawn>): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once("line", (line) => resolve(line.trim()));
    child.once("exit", (code) =>
      reject(new TeleportError(ErrorCode.CONNECTION, `demo host exited (${code})`)),
    );
  });
}
