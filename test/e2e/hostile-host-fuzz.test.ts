/**
 * A hostile host sending random sequences of entries (folders, symlinks with random `..` and
 * absolute targets, hard links to anything, files) never makes a pull create, link or write
 * anything outside its destination. Seeded (helpers/seed.ts): a failure names the seed that
 * replays it. Runs in both the addon and the portable mode (package.json's test:portable).
 */
import assert from "node:assert/strict";
import { lstatSync, realpathSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join, sep } from "node:path";
import { type TestContext, test } from "node:test";
import { TeleportClient } from "../../src/client/client.js";
import { pull } from "../../src/client/pull.js";
import { type Entry, Feature } from "../../src/wire/messages.js";
import { onCleanup, tempDir } from "../helpers/context.js";
import {
  dirEntry,
  fileFrames,
  hardLinkEntry,
  hostile,
  type ScriptStep,
  startHostileHost,
  symlinkEntry,
} from "../helpers/hostile-host.js";
import { type SeededRandom, seededRandom } from "../helpers/seed.js";
import { snapshotTree } from "../helpers/tree.js";

const ROUNDS = 40;
/**
 * Names by kind, so that most scripts go on past a clash of kinds (a folder where a symlink
 * is) to the entries that matter; targets use them all, and the victim's.
 */
const FOLDER_NAMES = ["d", "e"];
const SYMLINK_NAMES = ["s", "t", "u"];
const FILE_NAMES = ["f", "g"];
const TARGET_NAMES = [...FOLDER_NAMES, ...SYMLINK_NAMES, ...FILE_NAMES, "victim", "secret.txt"];

function pick<T>(random: SeededRandom, items: readonly T[]): T {
  return items[random.below(items.length)] as T;
}

/**
 * A target for a symlink `depth` folders down, of one of the shapes an escape takes: `..`s up
 * to (at times past) the destination, `..` after a symlink of the same folder (`s/..` is the
 * parent of where `s` points), an absolute path, or a random walk.
 */
function randomTarget(random: SeededRandom, depth: number, symlinksHere: readonly string[]): string {
  const name = () => pick(random, TARGET_NAMES);
  const symlink = () => symlinksHere.at(-1) ?? name();
  const ups = (count: number) => Array.from({ length: count }, () => "..");
  switch (random.below(8)) {
    case 0:
    case 1:
      return ups(Math.max(1, random.below(depth + 2) - (random.below(4) === 0 ? 0 : 1))).join("/");
    case 2:
    case 4:
      return [symlink(), ...ups(1 + random.below(2))].join("/");
    case 5:
      return `${symlink()}/../victim/secret.txt`;
    case 3:
      return random.below(4) === 0 ? `/${name()}` : name();
    default:
      return Array.from({ length: 1 + random.below(4) }, () => (random.below(3) === 0 ? ".." : name())).join(
        "/",
      );
  }
}

/** A manifest in walk order: entries go into the folder last entered, or a parent of it. */
function randomScript(random: SeededRandom): ScriptStep[] {
  // Most of it a folder down, where a symlink may point at `..` and pass a check of the text.
  const script: ScriptStep[] = [hostile.entries([dirEntry(""), dirEntry("d")])];
  const folders = ["", "d"];
  const files: string[] = [];
  /** Names of the symlinks sent, by folder. */
  const symlinks = new Map<string, string[]>();
  const entries = (entry: Entry) => script.push(hostile.entries([entry]));
  const inFolder = (folder: string, names: readonly string[]) =>
    folder === "" ? pick(random, names) : `${folder}/${pick(random, names)}`;
  for (let step = 0, steps = 4 + random.below(24); step < steps; step++) {
    const folder = folders.at(-1) ?? "";
    const kind = random.below(7);
    if (kind === 0 && folders.length > 1) folders.pop();
    else if (kind === 1) {
      folders.push(inFolder(folder, FOLDER_NAMES));
      entries(dirEntry(folders.at(-1) ?? ""));
    } else if (kind === 2 || kind === 3) {
      const here = symlinks.get(folder) ?? [];
      const path = inFolder(folder, SYMLINK_NAMES);
      entries(symlinkEntry(path, randomTarget(random, folders.length - 1, here)));
      symlinks.set(folder, [...here, path.slice(path.lastIndexOf("/") + 1)]);
    } else if (kind === 4) {
      const through = Array.from({ length: 1 + random.below(4) }, () => pick(random, TARGET_NAMES)).join("/");
      const target = files.length > 0 && random.below(3) === 0 ? pick(random, files) : through;
      entries(hardLinkEntry(inFolder(folder, FILE_NAMES), target));
    } else {
      const path = inFolder(folder, FILE_NAMES);
      script.push(...fileFrames(path, contentOf(path)));
      files.push(path);
    }
  }
  return script;
}

function contentOf(path: string): Buffer {
  return Buffer.from(`the bytes of ${path}\n`);
}

/** Every path under `root`, without following symlinks. */
async function walk(root: string): Promise<string[]> {
  return [...(await snapshotTree(root)).keys()].map((path) => join(root, path));
}

async function round(t: TestContext, random: SeededRandom, which: number): Promise<void> {
  const base = await tempDir(t, `fuzz${which}`);
  const dest = join(base, "dest");
  const victim = join(base, "victim");
  await mkdir(dest);
  await mkdir(victim);
  await writeFile(join(victim, "secret.txt"), "not yours");
  const features = random.below(4) === 0 ? 0 : Feature.HARD_LINKS;
  const host = await startHostileHost(join(base, "home"), randomScript(random), contentOf, { features });
  onCleanup(t, () => host.close());
  const client = await TeleportClient.connect(host.link);
  onCleanup(t, () => client.close());
  const victimBefore = await snapshotTree(victim);
  const baseBefore = await snapshotTree(base, { ignore: ["dest", "victim", "home"] });
  await pull(client, { dest, remotePath: "" }).catch(() => undefined); // refusals are fine
  const where = `round ${which} (seed ${random.seed})`;
  assert.deepEqual(await snapshotTree(victim), victimBefore, `${where}: the victim folder changed`);
  assert.deepEqual(await snapshotTree(base, { ignore: ["dest", "victim", "home"] }), baseBefore, where);
  const secret = lstatSync(join(victim, "secret.txt"));
  for (const path of await walk(dest)) {
    const stats = lstatSync(path);
    assert.ok(stats.ino !== secret.ino || stats.dev !== secret.dev, `${where}: ${path} is the victim's file`);
    if (!stats.isSymbolicLink()) continue;
    let resolved: string;
    try {
      resolved = realpathSync.native(path); // the kernel's resolution, as an open would do
    } catch {
      continue; // dangling, or a loop: it leads nowhere
    }
    assert.ok(resolved === dest || resolved.startsWith(dest + sep), `${where}: ${path} -> ${resolved}`);
  }
  await client.close();
  await host.close();
}

test("random entries from a hostile host create, link and write nothing outside the destination", async (t) => {
  const random = seededRandom(t);
  for (let which = 0; which < ROUNDS; which++) await round(t, random, which);
});
