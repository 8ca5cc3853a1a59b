/**
 * Comparing teleport's mirror flags with rsync's on the same trees (test/e2e/mirror-rsync,
 * push-mirror): the trees written with old mtimes, each tree's shape, and what rsync's itemized
 * run transferred and deleted.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { snapshotTree, type TreeNode } from "./tree.js";

/** The reason to skip a comparison, or false when rsync is here. */
export const RSYNC_SKIP =
  spawnSync("rsync", ["--version"]).status !== 0 ? "rsync is not installed (apt-get install rsync)" : false;

const OLD = new Date("2021-03-04T05:06:07Z");

/** `files` (path -> content) under `root`, each with an old mtime, so neither side takes it for new. */
export function writeTree(root: string, files: Record<string, string>): void {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(root, path, ".."), { recursive: true });
    writeFileSync(join(root, path), content);
    utimesSync(join(root, path), OLD, OLD);
  }
}

/** Every entry but its mtime (rsync and teleport touch folders at different moments), with a file's bytes. */
export async function treeShape(root: string, ignore: string[] = []): Promise<Map<string, string>> {
  const shaped = new Map<string, string>();
  for (const [path, node] of (await snapshotTree(root, { ignore })) as Map<string, TreeNode>) {
    const bytes = node.kind === "file" ? readFileSync(join(root, path), "utf8") : "";
    shaped.set(path, `${node.kind} ${node.mode.toString(8)} ${node.target} ${bytes}`);
  }
  return shaped;
}

export async function assertSameTree(expected: string, actual: string): Promise<void> {
  const [want, got] = [await treeShape(expected), await treeShape(actual)];
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `entries of ${actual} and ${expected}`);
  for (const [path, node] of want) assert.equal(got.get(path), node, `"${path}" in ${actual}`);
}

/**
 * What `rsync -a FLAGS SOURCE DEST/` transferred and deleted (or with --dry-run would), from its
 * itemized output. Its dry run lists a folder as deleted that the real run keeps because of an
 * excluded name inside ("cannot delete non-empty directory"); teleport's dry run says what the
 * real run does.
 */
export function rsyncRun(
  flags: readonly string[],
  source: string,
  dest: string,
): { copy: string[]; delete: string[] } {
  const out = execFileSync("rsync", ["-a", "--itemize-changes", ...flags, source, `${dest}/`], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  const copy: string[] = [];
  const deleted: string[] = [];
  for (const line of out.split("\n")) {
    if (line.startsWith(">f")) copy.push(line.slice(12));
    if (line.startsWith("*deleting")) deleted.push(line.slice(12).replace(/\/$/, ""));
  }
  return { copy: copy.sort(), delete: deleted.sort() };
}
