/**
 * `push --delete`, `--exclude`/`--include` and `--dry-run` through the real CLI, against rsync
 * pushing the same tree into a local folder: the host's upload folder must end as rsync's
 * destination does (names, kinds, bytes, modes, symlink targets), a dry run must name what rsync
 * transferred and deleted and write nothing on the host, and nothing of the share outside the
 * upload folder is ever touched. The rsync comparison is skipped, saying so, without rsync.
 */
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { describe, it, type TestContext, test } from "node:test";
import { runCli, STACK_TRACE_LINE } from "../helpers/cli.js";
import { waitFor } from "../helpers/context.js";
import { assertSameTree, RSYNC_SKIP, rsyncRun, treeShape, writeTree } from "../helpers/rsync-compare.js";
import { hostWithCli, makeShare } from "../helpers/share.js";

/** What the pusher's SRC holds. */
const SOURCE: Record<string, string> = {
  "top.txt": "top\n",
  "a/x.c": "int x;\n",
  "a/x.o": "object x\n",
  "a/b/y.o": "object y\n",
  "a/b/c/deep.txt": "deep\n",
  "build/out.bin": "binary\n",
  "docs/readme.md": "# docs\n",
  ".git/config": "[core]\n",
};

/** What the host's upload folder holds before: stale names, a changed file, excluded names. */
const FOLDER_BEFORE: Record<string, string> = {
  "stale.txt": "stale\n",
  "a/x.c": "int x = 1; /* changed */\n",
  "a/old.o": "old object\n",
  "a/b/gone.txt": "gone\n",
  "olddir/inner/f.txt": "f\n",
  "build/leftover": "leftover\n",
  ".git/HEAD": "ref\n",
};

/** Beside the upload folder in the share: never touched by a push into that folder. */
const SIBLING: Record<string, string> = { "other/keep.txt": "the host's own\n", "other/a/x.o": "theirs\n" };

/** A share with the upload folder `inbox` as it was before and a sibling, hosted for uploads; and SRC. */
async function pushFixture(t: TestContext, label: string) {
  const folder = await makeShare(t, label);
  const src = join(folder.base, "src");
  writeTree(src, SOURCE);
  symlinkSync("top.txt", join(src, "link"));
  mkdirSync(join(src, "empty"));
  writeTree(join(folder.share, "inbox"), FOLDER_BEFORE);
  writeTree(folder.share, SIBLING);
  const host = await hostWithCli(t, { base: folder.base, share: folder.share, args: ["--allow-upload"] });
  await waitFor(async () => host.stderr().includes("share indexed for uploads") || undefined, {
    what: "the host to index its share",
  });
  return { ...folder, src, writeLink: host.writeLink as string };
}

const CASES: { name: string; flags: string[] }[] = [
  { name: "--delete alone", flags: ["--delete"] },
  { name: "--delete and an unanchored name pattern", flags: ["--delete", "--exclude", "*.o"] },
  {
    name: "--delete, an anchored folder and a folder-only pattern",
    flags: ["--delete", "--exclude", "/build", "--exclude", ".git/"],
  },
  {
    name: "--delete, includes before a catch-all exclude",
    flags: ["--delete", "--include", "*.c", "--include", "*/", "--exclude", "*"],
  },
  { name: "no --delete, two excludes", flags: ["--exclude", "docs/", "--exclude", "*.txt"] },
];

describe("push --delete/--exclude/--include/--dry-run give rsync's tree", { skip: RSYNC_SKIP }, () => {
  for (const { name, flags } of CASES) {
    it(name, async (t: TestContext) => {
      const fixture = await pushFixture(t, "push-mirror");
      const inbox = join(fixture.share, "inbox");
      const rsyncDest = join(fixture.base, "rsync-dest");
      const before = join(fixture.base, "inbox-before");
      cpSync(inbox, rsyncDest, { recursive: true, preserveTimestamps: true });
      cpSync(inbox, before, { recursive: true, preserveTimestamps: true });
      const sibling = await treeShape(fixture.share, ["inbox"]);
      const planned = rsyncRun(flags, `${fixture.src}/`, rsyncDest);

      const pushing = ["push", fixture.src, fixture.writeLink, "--path", "inbox", ...flags];
      const dry = await runCli([...pushing, "--dry-run", "--json"], fixture.env);
      assert.equal(dry.code, 0, dry.stderr);
      const report = JSON.parse(dry.stdout) as {
        dryRun: boolean;
        copy: string[];
        reuse: string[];
        delete: string[];
      };
      assert.equal(report.dryRun, true);
      assert.deepEqual([...report.copy, ...report.reuse].sort(), planned.copy, "files to transfer");
      assert.deepEqual([...report.delete].sort(), planned.delete, "entries to delete");
      await assertSameTree(before, inbox); // the dry run wrote nothing

      const pushed = await runCli([...pushing, "--json"], fixture.env);
      assert.equal(pushed.code, 0, pushed.stderr);
      await assertSameTree(rsyncDest, inbox);
      const summary = JSON.parse(pushed.stdout) as { deletedCount: number; deleted: string[] };
      assert.equal(summary.deletedCount, planned.delete.length, "entries deleted");
      assert.deepEqual([...summary.deleted].sort(), planned.delete);
      assert.deepEqual(
        await treeShape(fixture.share, ["inbox"]),
        sibling,
        "the share beside the upload folder",
      );
    });
  }
});

test("push --dry-run into a folder the share lacks makes nothing, and prints what a push would copy", async (t) => {
  const fixture = await pushFixture(t, "push-dry-run");
  const before = await treeShape(fixture.share);
  const dry = await runCli(
    ["push", fixture.src, fixture.writeLink, "--path", "new/inbox", "--dry-run"],
    fixture.env,
  );
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /^copy a\/x\.c$/m);
  assert.match(dry.stdout, /dry run: 8 files to copy, 0 to reuse, 0 unchanged, 0 to delete/);
  assert.deepEqual(await treeShape(fixture.share), before);
  assert.ok(!existsSync(join(fixture.share, "new")));
});

test("push --delete of a file, or into the share's root, is refused and removes nothing", async (t) => {
  const fixture = await pushFixture(t, "push-delete-refused");
  const before = await treeShape(fixture.share);
  const attempts = [
    ["push", join(fixture.src, "top.txt"), fixture.writeLink, "--path", "inbox", "--delete"],
    ["push", fixture.src, fixture.writeLink, "--path", "", "--delete"],
  ];
  for (const args of attempts) {
    const result = await runCli(args, fixture.env);
    assert.notEqual(result.code, 0, `${args.join(" ")} succeeded`);
    assert.match(result.stderr, /TELEPORT_ERR_USAGE/);
    assert.doesNotMatch(result.stderr, STACK_TRACE_LINE);
  }
  assert.deepEqual(await treeShape(fixture.share), before);
});
