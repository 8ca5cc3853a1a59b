/**
 * The real trees of the real-tree benchmarks: two releases of the Linux source Debian ships in
 * `linux-source-6.1` (~78,600 files, 1.3 GB, mostly files under 16 KiB), and for quick mode the
 * HTML manual of `postgresql-doc-15` (1,173 files, 16 MB), fetched and unpacked once per process.
 */
import {
  type DebianTree,
  type DebianTreeSpec,
  ensureDebianTree,
  type ReleasePair,
} from "../../lib/debian-tree.js";
import type { BenchContext, Check, Figure } from "../../lib/types.js";

/** Releases of bookworm's security updates; $BENCH_REAL_TREE_VERSIONS=OLD,NEXT picks others. */
export const LINUX_SOURCE: DebianTreeSpec = {
  package: "linux-source-6.1",
  versions: versionsFromEnv() ?? { old: "6.1.190-1", next: "6.1.192-3" },
  source: { tarball: "usr/src/linux-source-6.1.tar.xz", folder: "linux-source-6.1" },
  name: "linux-source-6.1",
  approximateBytes: 1.4e9,
};

/** Quick mode's tree: small enough to fetch, unpack and pull in seconds. */
const POSTGRESQL_MANUAL: DebianTreeSpec = {
  package: "postgresql-doc-15",
  versions: { old: "15.18-0+deb12u1", next: "15.20-0+deb12u1" },
  source: { folder: "usr/share/doc/postgresql-doc-15/html" },
  name: "postgresql-doc-15",
  approximateBytes: 20e6,
};

function versionsFromEnv(): ReleasePair | null {
  const [old, next] = (process.env.BENCH_REAL_TREE_VERSIONS ?? "").split(",");
  return old && next ? { old, next } : null;
}

const trees = new Map<string, Promise<DebianTree | { unavailable: string }>>();

/** Both releases of the tree for this mode, fetched and unpacked once per process. */
export function realTree(context: BenchContext): Promise<DebianTree | { unavailable: string }> {
  const spec = context.quick ? POSTGRESQL_MANUAL : LINUX_SOURCE;
  let tree = trees.get(spec.package);
  if (tree === undefined) {
    tree = ensureDebianTree(spec, context.workDir, context.log);
    trees.set(spec.package, tree);
  }
  return tree;
}

/** Quick mode proves the case runs: one timed run after the warm-up. */
export function runsFor(context: BenchContext): BenchContext {
  return context.quick ? { ...context, runs: 1 } : context;
}

export function describeTree(tree: DebianTree, release: "old" | "next"): string {
  const payload = tree[release];
  return `${tree.spec.package} ${tree.versions[release]}: ${payload.files} files, ${(payload.bytes / 1e6).toFixed(0)} MB`;
}

/** "at least as fast as X", "N x as fast as X"; unmet when X has no figure in this run. */
export function fasterThan(teleport: Figure, peer: Figure | undefined, factor = 1): Check {
  const label = factor === 1 ? "at least as fast as" : `>= ${factor}x as fast as`;
  if (peer === undefined) return { description: `${label} a peer that did not run`, met: false };
  const ratio = peer.median / teleport.median;
  return { description: `${label} ${peer.tool}: ${ratio.toFixed(2)}x`, met: ratio >= factor };
}
