/**
 * `--exclude`/`--include` matchers on a real tree's paths: teleport's PathFilter (picomatch, one
 * compiled matcher per rule, first match wins) against the `ignore` package (gitignore rules: the
 * same rules reversed, includes as `!` negations, unanchored patterns holding "/" as `**\/`). Each
 * walks the tree as the host does (a folder excluded is not descended) and asks about every entry;
 * both must leave out the same paths (the rules avoid a `**` between two slashes, which gitignore
 * lets match no folder and rsync does not). `ignore` is not a dependency: give the folder holding its
 * node_modules, or that matcher is skipped with a message. Medians of `--runs`.
 *
 *   node dist/bench/micro/filter-matchers.js [--tree DIR] [--runs 5] [--ignore-from DIR]
 */
import { readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { FilterKind, type FilterRule, PathFilter } from "../../src/filter/path-filter.js";
import { median } from "../lib/stats.js";

const { values } = parseArgs({
  options: {
    tree: { type: "string", default: "/dev/shm/rt/t6.1.192-3/linux-source-6.1" },
    runs: { type: "string", default: "5" },
    "ignore-from": { type: "string" },
  },
});

const RULES: FilterRule[] = [
  { kind: FilterKind.INCLUDE, pattern: "drivers/net/ethernet/intel/" },
  { kind: FilterKind.EXCLUDE, pattern: "drivers/net/ethernet/*/" },
  { kind: FilterKind.EXCLUDE, pattern: "/Documentation" },
  { kind: FilterKind.EXCLUDE, pattern: "*.rst" },
  { kind: FilterKind.EXCLUDE, pattern: "arch/*/boot/" },
  { kind: FilterKind.INCLUDE, pattern: "Makefile" },
  { kind: FilterKind.EXCLUDE, pattern: "*.[oa]" },
  { kind: FilterKind.EXCLUDE, pattern: "tools/testing/**" },
];

interface Entry {
  path: string;
  isFolder: boolean;
}

/** Every entry beneath `root`, a folder before what it holds. */
function listTree(root: string, prefix = "", out: Entry[] = []): Entry[] {
  for (const dirent of readdirSync(join(root, prefix), { withFileTypes: true })) {
    const path = prefix === "" ? dirent.name : `${prefix}/${dirent.name}`;
    out.push({ path, isFolder: dirent.isDirectory() });
    if (dirent.isDirectory()) listTree(root, path, out);
  }
  return out;
}

/** The walk's decisions: paths left out, a folder's contents with it. */
function walk(entries: readonly Entry[], excludes: (path: string, isFolder: boolean) => boolean): string[] {
  const out: string[] = [];
  let skipping: string | undefined;
  for (const { path, isFolder } of entries) {
    if (skipping !== undefined && path.startsWith(skipping)) continue;
    skipping = undefined;
    if (!excludes(path, isFolder)) continue;
    out.push(path);
    if (isFolder) skipping = `${path}/`;
  }
  return out;
}

/** The rules as gitignore lines for `ignore`: last match wins there, so reversed. */
function gitignoreLines(rules: readonly FilterRule[]): string[] {
  return [...rules].reverse().map(({ kind, pattern }) => {
    const anchored = pattern.startsWith("/") || !pattern.replace(/\/$/, "").includes("/");
    const line = anchored ? pattern : `**/${pattern}`;
    return kind === FilterKind.INCLUDE ? `!${line}` : line;
  });
}

function time(label: string, entries: readonly Entry[], make: () => (p: string, d: boolean) => boolean) {
  const seconds: number[] = [];
  let excluded: string[] = [];
  for (let run = 0; run < Number(values.runs); run++) {
    const started = performance.now();
    excluded = walk(entries, make());
    seconds.push((performance.now() - started) / 1000);
  }
  const ms = median(seconds) * 1000;
  console.log(
    `| ${label} | ${entries.length} | ${excluded.length} | ${ms.toFixed(1)} ms | ${((ms * 1e6) / entries.length).toFixed(0)} ns |`,
  );
  return excluded;
}

const entries = listTree(values.tree);
console.log(
  "| matcher | entries | left out | walk's decisions (median) | per entry |\n|---|---|---|---|---|",
);
const ours = time("PathFilter (picomatch)", entries, () => {
  const filter = PathFilter.compile(RULES);
  return (path, isFolder) => filter.excludes(path, isFolder);
});
const from = values["ignore-from"];
if (from === undefined) {
  console.log("ignore: skipped (--ignore-from DIR, a folder whose node_modules holds `ignore`)");
} else {
  type Ignore = { add(lines: string[]): Ignore; ignores(path: string): boolean };
  const ignore = createRequire(join(from, "index.js"))("ignore") as () => Ignore;
  const theirs = time("ignore (gitignore rules)", entries, () => {
    const matcher = ignore().add(gitignoreLines(RULES));
    return (path, isFolder) => matcher.ignores(isFolder ? `${path}/` : path);
  });
  const same = theirs.length === ours.length && theirs.every((path, i) => path === ours[i]);
  console.log(
    same ? "both leave out the same paths" : `they differ: ${ours.length} against ${theirs.length}`,
  );
}
