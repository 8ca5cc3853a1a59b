// Measures a file watcher on a big tree, one watcher per process (so RSS is its own):
//   node bench/watchers/compare.mjs parcel|chokidar TREE [DEPS_DIR]
// DEPS_DIR holds node_modules with @parcel/watcher and chokidar (default /dev/shm/watch-deps).
// Prints one JSON line: start seconds, RSS added, inotify watches, one-edit latency (median of
// 20), a 1,000-file burst (callbacks, events, time to the last), a rename (events seen).
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [kind, tree, depsDir = "/dev/shm/watch-deps"] = process.argv.slice(2);
const modules = join(depsDir, "node_modules");

function inotifyWatches() {
  let watches = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    let target = "";
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;
    }
    if (!target.includes("inotify")) continue;
    const info = readFileSync(`/proc/self/fdinfo/${fd}`, "utf8");
    watches += info.split("\n").filter((line) => line.startsWith("inotify wd:")).length;
  }
  return watches;
}

/** Calls `onBatch(paths)` per callback of the watcher; resolves once it watches. */
async function startWatcher(onBatch) {
  if (kind === "parcel") {
    const watcher = await import(pathToFileURL(join(modules, "@parcel/watcher/index.js")).href);
    const subscription = await watcher.subscribe(tree, (err, events) => {
      if (err === null) onBatch(events.map((event) => `${event.type} ${event.path}`));
    });
    return () => subscription.unsubscribe();
  }
  const { watch } = await import(pathToFileURL(join(modules, "chokidar/index.js")).href);
  const watcher = watch(tree, { ignoreInitial: true, persistent: true });
  watcher.on("all", (event, path) => onBatch([`${event} ${path}`]));
  await new Promise((resolve) => watcher.once("ready", resolve));
  return () => watcher.close();
}

let listener = () => {};
const rssBefore = process.memoryUsage().rss;
const started = performance.now();
const stop = await startWatcher((paths) => listener(paths));
const startSeconds = (performance.now() - started) / 1000;
globalThis.gc?.();
const rssAdded = process.memoryUsage().rss - rssBefore;
const watches = inotifyWatches();

/** Runs `change`, resolves with what arrived until `done(seen)` says so (or 10 s passed). */
function observe(change, done) {
  return new Promise((resolve) => {
    const seen = { callbacks: 0, events: [], firstMs: 0, lastMs: 0 };
    const t0 = performance.now();
    const timer = setTimeout(() => resolve({ ...seen, timedOut: true }), 10_000);
    listener = (paths) => {
      seen.callbacks++;
      seen.events.push(...paths);
      seen.lastMs = performance.now() - t0;
      if (seen.firstMs === 0) seen.firstMs = seen.lastMs;
      if (done(seen)) {
        clearTimeout(timer);
        // What still comes within a quiet 300 ms belongs to the same change.
        setTimeout(() => resolve(seen), 300);
        listener = (more) => {
          seen.callbacks++;
          seen.events.push(...more);
        };
      }
    };
    change();
  });
}

const target = join(tree, "extra", "d0", "f0.txt");
const latencies = [];
for (let i = 0; i < 20; i++) {
  const seen = await observe(
    () => writeFileSync(target, `edit ${i}\n`, { flag: "a" }),
    (s) => s.events.some((e) => e.endsWith(target)),
  );
  latencies.push(seen.firstMs);
}
latencies.sort((a, b) => a - b);

const burstDir = join(tree, "burst");
mkdirSync(burstDir);
const burst = await observe(
  () => {
    for (let i = 0; i < 1000; i++) writeFileSync(join(burstDir, `b${i}.txt`), `burst ${i}\n`);
  },
  (s) => s.events.filter((e) => e.includes("/burst/b")).length >= 1000,
);
const renamed = await observe(
  () => renameSync(join(tree, "extra", "d1", "f1.txt"), join(tree, "extra", "d1", "moved.txt")),
  (s) => s.events.some((e) => e.endsWith("moved.txt")),
);
renameSync(join(tree, "extra", "d1", "moved.txt"), join(tree, "extra", "d1", "f1.txt"));
await stop();
rmSync(burstDir, { recursive: true });

console.log(
  JSON.stringify({
    watcher: kind,
    startSeconds: Number(startSeconds.toFixed(2)),
    rssAddedMiB: Math.round(rssAdded / 2 ** 20),
    inotifyWatches: watches,
    editLatencyMs: { p50: Math.round(latencies[10]), max: Math.round(latencies[19]) },
    burst: {
      callbacks: burst.callbacks,
      events: burst.events.length,
      lastMs: Math.round(burst.lastMs),
      timedOut: burst.timedOut === true,
    },
    rename: renamed.events.map((e) => e.replace(tree, "")),
  }),
);
