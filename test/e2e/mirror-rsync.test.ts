/**
 * `pull --delete`, `--exclude`/`--include` and `--dry-run` against rsync: the same flags on the
 * same trees must leave the same destination (names, kinds, bytes, modes, symlink targets), and a
 * dry run must name the files rsync (and its dry run) transferred and the entries it deleted,
 * writing nothing.
 * Skipped, saying so, where rsync is not installed (.ci/run installs it).
 */
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { runCli } from "../helpers/cli.js";
import { assertSameTree, RSYNC_SKIP, rsyncRun, writeTree } from "../helpers/rsync-compare.js";
import { hostWithCli, makeShare, type ShareFolder } from "../helpers/share.js";

/** The source: nested folders, names the patterns pick out, a symlink and an empty folder. */
const SOURCE: Record<string, string> = {
  "top.txt": "top\n",
  "a/x.c": "int x;\n",
  "a/x.o": "object x\n",
  "a/b/y.o": "object y\n",
  "a/b/c/deep.txt": "deep\n",
  "a/b/c/deep.c": "int deep;\n",
  "build/out.bin": "binary\n",
  "build/keep/k.txt": "k\n",
  "docs/readme.md": "# docs\n",
  ".git/config": "[core]\n",
  "nested/build/inner.txt": "inner build\n",
};

/** What DEST holds before: stale names, changed files, excluded names that must survive. */
const DEST_BEFORE: Record<string, string> = {
  "stale.txt": "stale\n",
  "a/x.c": "int x = 1; /* changed */\n",
  "a/old.o": "old object\n",
  "a/b/gone.txt": "gone\n",
  "olddir/inner/f.txt": "f\n",
  "olddir/p.o": "protected object\n",
  "build/leftover": "leftover\n",
  "docs/old.md": "old docs\n",
  ".git/HEAD": "ref\n",
};

/** The share, and a DEST as it was before, for each side to copy. */
function makeTrees(folder: ShareFolder): string {
  writeTree(folder.share, SOURCE);
  symlinkSync("top.txt", join(folder.share, "link"));
  mkdirSync(join(folder.share, "empty"));
  const before = join(folder.base, "dest-before");
  writeTree(before, DEST_BEFORE);
  // One file already there as the source has it: neither side transfers it.
  cpSync(join(folder.share, "docs/readme.md"), join(before, "docs/readme.md"), { preserveTimestamps: true });
  return before;
}

/** `path`: pulled with --path, as rsync is given `share/path` (no trailing "/"): it lands as DEST/path. */
const CASES: { name: string; flags: string[]; path?: string }[] = [
  { name: "--delete alone", flags: ["--delete"] },
  { name: "--delete, an unanchored name pattern", flags: ["--delete", "--exclude", "*.o"] },
  {
    name: "--delete, an anchored folder and a folder-only pattern",
    flags: ["--delete", "--exclude", "/build", "--exclude", ".git/"],
  },
  {
    name: "--delete, includes before a catch-all exclude",
    flags: ["--delete", "--include", "*.c", "--include", "*/", "--exclude", "*"],
  },
  { name: "--delete, what is inside a folder (dir/**)", flags: ["--delete", "--exclude", "a/b/**"] },
  {
    name: "--delete, a pattern holding / matched at any depth",
    flags: ["--delete", "--exclude", "build/*.txt"],
  },
  { name: "no --delete, two excludes", flags: ["--exclude", "docs/", "--exclude", "*.txt"] },
  {
    name: "--delete, ** between folders, before an anchored name and before an unanchored one",
    flags: [
      "--delete",
      "--exclude",
      "a/**/x.c",
      "--exclude",
      "a/**/deep.c",
      "--exclude",
      "/**/inner.txt",
      "--exclude",
      "**/top.txt",
    ],
  },
  {
    name: "--path a --delete: only inside DEST/a, anchored at DEST",
    path: "a",
    flags: ["--delete", "--exclude", "/a/b/c"],
  },
];

describe("pull --delete/--exclude/--include give rsync's tree", { skip: RSYNC_SKIP }, () => {
  for (const { name, flags, path } of CASES) {
    it(name, async (t: TestContext) => {
      const folder = await makeShare(t, "mirror-rsync");
      const before = makeTrees(folder);
      const host = await hostWithCli(t, folder);
      const rsyncDest = join(folder.base, "rsync-dest");
      const teleportDest = join(folder.base, "teleport-dest");
      cpSync(before, rsyncDest, { recursive: true, preserveTimestamps: true });
      cpSync(before, teleportDest, { recursive: true, preserveTimestamps: true });

      const source = path === undefined ? `${folder.share}/` : join(folder.share, path);
      const rsyncDry = rsyncRun(["--dry-run", ...flags], source, rsyncDest);
      await assertSameTree(before, rsyncDest);
      const planned = rsyncRun(flags, source, rsyncDest);
      assert.deepEqual(rsyncDry.copy, planned.copy);
      // What rsync's dry run lists beyond its real run: folders the real run kept.
      for (const kept of rsyncDry.delete.filter((path) => !planned.delete.includes(path)))
        assert.ok(existsSync(join(rsyncDest, kept)), `rsync's dry run listed "${kept}"`);
      const pulling = path === undefined ? flags : [...flags, "--path", path];
      const dry = await runCli(
        ["pull", host.link, teleportDest, "--dry-run", "--json", ...pulling],
        folder.env,
      );
      assert.equal(dry.code, 0, dry.stderr);
      const report = JSON.parse(dry.stdout) as { copy: string[]; reuse: string[]; delete: string[] };
      assert.deepEqual([...report.copy, ...report.reuse].sort(), planned.copy, "files to transfer");
      assert.deepEqual([...report.delete].sort(), planned.delete, "entries to delete");
      await assertSameTree(before, teleportDest); // the dry run wrote nothing

      const pulled = await runCli(["pull", host.link, teleportDest, "--json", ...pulling], folder.env);
      assert.equal(pulled.code, 0, pulled.stderr);
      await assertSameTree(rsyncDest, teleportDest);
      const summary = JSON.parse(pulled.stdout) as { deletedCount: number; deleted: string[] };
      assert.equal(summary.deletedCount, planned.delete.length, "entries deleted");
      assert.deepEqual([...summary.deleted].sort(), planned.delete);
    });
  }
});
