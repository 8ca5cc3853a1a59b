/**
 * Real trees nobody here wrote: two releases of a tree shipped in a Debian package, fetched with
 * `apt-get download` into a cache of .debs (kept across runs, so nothing is downloaded twice) and
 * unpacked into a memory file system where there is room. A tree that cannot be fetched is a
 * reason to skip, never a failure.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { ensureBuiltTree, type Payload } from "./payload.js";
import { makeTempDir, treeScratchParent } from "./processes.js";

const execFileAsync = promisify(execFile);

/** A tree as a Debian package ships it, in two releases. */
export interface DebianTreeSpec {
  package: string;
  /** The releases pulled: `old` is the copy a client already holds, `next` the one it pulls. */
  versions: ReleasePair;
  /** Where the tree is in the package: a folder, or a tarball holding it. */
  source: { folder: string } | { tarball: string; folder: string };
  /** The tree's name in every share and copy, the same for both releases. */
  name: string;
  /** About how large one release is unpacked: decides whether tmpfs has room. */
  approximateBytes: number;
}

export interface ReleasePair {
  old: string;
  next: string;
}

export interface DebianTree {
  spec: DebianTreeSpec;
  /** The pair actually used: the spec's, or the newest two apt offers when those are gone. */
  versions: ReleasePair;
  old: Payload;
  next: Payload;
  notes: string[];
}

/** The .deb cache: $BENCH_DEBS (a folder that may already hold them), else `workDir/debs`. */
export function debCacheDir(workDir: string): string {
  return process.env.BENCH_DEBS ?? join(workDir, "debs");
}

/**
 * Where unpacked trees go: $BENCH_REAL_TREES keeps them across runs (a second run then starts at
 * once); otherwise a temp folder, on tmpfs when it has room, removed at exit, since two releases
 * of a large tree would otherwise hold gigabytes of memory after the suite ends.
 */
function unpackParent(spec: DebianTreeSpec): string {
  const kept = process.env.BENCH_REAL_TREES;
  if (kept !== undefined) {
    mkdirSync(kept, { recursive: true });
    return kept;
  }
  // Both releases plus a copy per tool being pulled side by side.
  return makeTempDir("real-tree", treeScratchParent(4 * spec.approximateBytes)).path;
}

/**
 * Both releases of `spec`, unpacked, or the reason they cannot be had here (no apt, no network,
 * versions gone from the archive): the caller skips with that reason.
 */
export async function ensureDebianTree(
  spec: DebianTreeSpec,
  workDir: string,
  log: (message: string) => void,
): Promise<DebianTree | { unavailable: string }> {
  const cache = debCacheDir(workDir);
  mkdirSync(cache, { recursive: true });
  const notes: string[] = [];
  let versions = spec.versions;
  let debs = await fetchDebs(spec.package, versions, cache, log);
  if ("unavailable" in debs) {
    const offered = newestTwoVersions(await aptOutput(["apt-cache", "madison", spec.package]));
    if (offered === null) return { unavailable: debs.unavailable };
    log(
      `${spec.package}: ${debs.unavailable}; trying the newest two apt offers, ${offered.old} and ${offered.next}`,
    );
    notes.push(
      `${spec.package} ${versions.old} / ${versions.next} could not be fetched; measured ${offered.old} -> ${offered.next}, ` +
        "so its figures do not compare with runs on the usual pair",
    );
    versions = offered;
    debs = await fetchDebs(spec.package, versions, cache, log);
    if ("unavailable" in debs) return { unavailable: debs.unavailable };
  }
  const parent = unpackParent(spec);
  const old = await unpackRelease(spec, versions.old, debs.old, parent, log);
  const next = await unpackRelease(spec, versions.next, debs.next, parent, log);
  return { spec, versions, old, next, notes };
}

async function fetchDebs(
  debianPackage: string,
  versions: ReleasePair,
  cache: string,
  log: (message: string) => void,
): Promise<{ old: string; next: string } | { unavailable: string }> {
  const old = await fetchDeb(debianPackage, versions.old, cache, log);
  if (typeof old !== "string") return old;
  const next = await fetchDeb(debianPackage, versions.next, cache, log);
  if (typeof next !== "string") return next;
  return { old, next };
}

let aptListsUpdated = false;

/** The cached .deb of `version`, downloaded first if missing (after `apt-get update` if need be). */
async function fetchDeb(
  debianPackage: string,
  version: string,
  cache: string,
  log: (message: string) => void,
): Promise<string | { unavailable: string }> {
  const cached = findCachedDeb(cache, debianPackage, version);
  if (cached !== null) return cached;
  log(`downloading ${debianPackage} ${version} into ${cache}`);
  let download = await aptOutput(["apt-get", "download", `${debianPackage}=${version}`], cache);
  if (!download.ok && !aptListsUpdated && process.getuid?.() === 0) {
    aptListsUpdated = true;
    await aptOutput(["apt-get", "update"]);
    download = await aptOutput(["apt-get", "download", `${debianPackage}=${version}`], cache);
  }
  const fetched = findCachedDeb(cache, debianPackage, version);
  if (fetched !== null) return fetched;
  const tail = download.output.trim().split("\n").slice(-2).join(" | ");
  return { unavailable: `could not fetch ${debianPackage} ${version} with apt-get download: ${tail}` };
}

/**
 * The .deb of `version` among `fileNames`: `apt-get download` names it `PACKAGE_VERSION_ARCH.deb`,
 * an epoch's colon written %3a.
 */
export function findDebName(
  fileNames: readonly string[],
  debianPackage: string,
  version: string,
): string | null {
  const prefix = `${debianPackage}_${version.replace(":", "%3a")}_`;
  return fileNames.find((name) => name.startsWith(prefix) && name.endsWith(".deb")) ?? null;
}

function findCachedDeb(cache: string, debianPackage: string, version: string): string | null {
  const name = findDebName(readdirSync(cache), debianPackage, version);
  return name === null ? null : join(cache, name);
}

/**
 * The newest two versions in `apt-cache madison` output (which lists newest first), or null when
 * it offers fewer than two.
 */
export function newestTwoVersions(madison: { ok: boolean; output: string }): ReleasePair | null {
  if (!madison.ok) return null;
  const versions: string[] = [];
  for (const line of madison.output.split("\n")) {
    const version = line.split("|")[1]?.trim();
    if (version !== undefined && version !== "" && !versions.includes(version)) versions.push(version);
  }
  const [next, old] = versions;
  return next === undefined || old === undefined ? null : { old, next };
}

async function aptOutput(command: readonly string[], cwd?: string): Promise<{ ok: boolean; output: string }> {
  const [program, ...args] = command;
  if (program === undefined) throw new Error("no command");
  try {
    const result = await execFileAsync(program, args, {
      cwd,
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      encoding: "utf8",
      timeout: 10 * 60_000,
      maxBuffer: 16 << 20,
    });
    return { ok: true, output: `${result.stdout}${result.stderr}` };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; message?: string };
    return { ok: false, output: `${failed.stdout ?? ""}${failed.stderr ?? ""}${failed.message ?? ""}` };
  }
}

/**
 * `parent/PACKAGE_VERSION/NAME`, unpacked from `deb` unless a marker says it already was from
 * this very file (its name and size).
 */
async function unpackRelease(
  spec: DebianTreeSpec,
  version: string,
  deb: string,
  parent: string,
  log: (message: string) => void,
): Promise<Payload> {
  const root = join(parent, `${spec.package}_${version.replace(":", "%3a")}`);
  const layout = JSON.stringify({ deb, bytes: statSync(deb).size, source: spec.source, version: 1 });
  const marker = join(root, `.${spec.name}.layout`);
  const fresh = !existsSync(marker) || readFileSync(marker, "utf8") !== layout;
  if (fresh) log(`unpacking ${spec.package} ${version} into ${root}`);
  const started = performance.now();
  const payload = await ensureBuiltTree(root, spec.name, layout, (path) => unpackInto(spec, deb, path));
  if (fresh)
    log(
      `unpacked ${payload.files} files, ${(payload.bytes / 1e6).toFixed(0)} MB in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  return payload;
}

async function unpackInto(spec: DebianTreeSpec, deb: string, path: string): Promise<void> {
  const staging = `${path}.unpacking`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  try {
    if ("tarball" in spec.source) {
      // The tarball is streamed out of the package and unpacked without landing on disk.
      await execFileAsync("bash", [
        "-c",
        'set -o pipefail; dpkg-deb --fsys-tarfile "$1" | tar -xO "./$2" | tar -xJ -C "$3"',
        "unpack",
        deb,
        spec.source.tarball,
        staging,
      ]);
    } else {
      await execFileAsync("dpkg-deb", ["-x", deb, staging]);
    }
    renameSync(join(staging, spec.source.folder), path);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  if (!existsSync(path)) throw new Error(`${deb} holds no ${spec.source.folder}`);
}
