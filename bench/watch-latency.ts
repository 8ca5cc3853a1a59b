/**
 * `pull --watch` change-to-visible latency: a one-line edit in a 100k-file tree (a copy of a
 * Linux source tree, topped up with small files), timed from the write on the host to the new
 * size at the destination, over loopback and over netsim (50 ms one way); then a 1 GiB file
 * renamed, and what that moved. The peer is the classic inotifywait + rsync loop, pushing each
 * written file to an rsync daemon on the other side (into the same destination, a mirror by
 * then), timed the same way in the same run.
 *
 *   npm run build && node dist/bench/watch-latency.js [--tree DIR] [--edits 50] [--no-netsim]
 *     [--no-peer] [--no-rename] [--scratch /dev/shm]
 *
 * Prints a line per figure and one JSON object at the end. Needs root for netsim, and
 * inotify-tools and rsync for the peer (installed with apt-get when missing, else skipped).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { findNetsim } from "./lib/netsim.js";
import { ensureDebianPackages } from "./lib/peers.js";
import { findFreePort } from "./lib/processes.js";
import { median, quantile } from "./lib/stats.js";

const REPO = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const CLI = join(REPO, "dist", "src", "cli", "bin.js");
const TREE_FILES = Number(process.env.WATCH_BENCH_FILES ?? 100_000);
const NETSIM_NAME = "watchlat";
const NETSIM_DELAY_MS = 50;

const { values: flags } = parseArgs({
  options: {
    tree: { type: "string", default: "/dev/shm/rt/t6.1.192-3/linux-source-6.1" },
    edits: { type: "string", default: "50" },
    scratch: { type: "string", default: "/dev/shm" },
    "no-netsim": { type: "boolean", default: false },
    "no-peer": { type: "boolean", default: false },
    "no-rename": { type: "boolean", default: false },
  },
});
const EDITS = Number(flags.edits);

/** Processes started here, ended (by pid) on the way out. */
const started: ChildProcess[] = [];
function stopAll(): void {
  for (const child of started)
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}
process.on("exit", stopAll);

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

async function until<T>(probe: () => T | undefined | false, what: string, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** The share: a copy of `tree`, topped up to TREE_FILES files; returns its regular files. */
function makeShare(tree: string, share: string): string[] {
  const copy = spawnSync("cp", ["-a", tree, share]);
  if (copy.status !== 0) throw new Error(`cp -a ${tree}: ${copy.stderr}`);
  const files = listFiles(share);
  for (let i = 0; files.length < TREE_FILES; i++) {
    const folder = join(share, "extra", `d${Math.floor(i / 250)}`);
    if (i % 250 === 0) mkdirSync(folder, { recursive: true });
    const path = join(folder, `f${i}.txt`);
    writeFileSync(path, `extra file ${i}\n`);
    files.push(path);
  }
  return files;
}

function listFiles(root: string): string[] {
  const files: string[] = [];
  const walk = (folder: string) => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) files.push(path);
    }
  };
  walk(root);
  return files;
}

/** `teleport host` (in netsim host b, or on loopback); resolves with its link. */
async function startHost(share: string, home: string, netsim: string | undefined): Promise<string> {
  const linkFile = join(home, "link.txt");
  rmSync(linkFile, { force: true });
  const args = [CLI, "host", share, "--bind", netsim === undefined ? "127.0.0.1" : "10.77.0.2"];
  const command =
    netsim === undefined
      ? [process.execPath, ...args]
      : [netsim, "exec", NETSIM_NAME, "b", "--", process.execPath, ...args];
  const child = spawn(command[0] as string, [...command.slice(1), "--link-file", linkFile, "--no-quic"], {
    env: { ...process.env, TELEPORT_HOME: home },
    stdio: ["ignore", "ignore", "inherit"],
  });
  started.push(child);
  await until(() => existsSync(linkFile) && statSync(linkFile).size > 0, "the host's link", 60_000);
  const { readFileSync } = await import("node:fs");
  return readFileSync(linkFile, "utf8").split("\n")[0] ?? "";
}

interface Watcher {
  child: ChildProcess;
  lines: Record<string, unknown>[];
}

/** `teleport pull LINK DEST --watch --json` (in netsim host a, or here); resolves once synced. */
async function startWatcher(
  link: string,
  dest: string,
  home: string,
  netsim: string | undefined,
): Promise<Watcher> {
  const args = [CLI, "pull", link, dest, "--watch", "--json"];
  const command =
    netsim === undefined
      ? [process.execPath, ...args]
      : [netsim, "exec", NETSIM_NAME, "a", "--", process.execPath, ...args];
  const child = spawn(command[0] as string, command.slice(1), {
    env: { ...process.env, TELEPORT_HOME: home },
    stdio: ["ignore", "pipe", "inherit"],
  });
  started.push(child);
  const watcher: Watcher = { child, lines: [] };
  let buffered = "";
  child.stdout?.on("data", (data: Buffer) => {
    buffered += data.toString("utf8");
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) if (line !== "") watcher.lines.push(JSON.parse(line));
  });
  await until(() => watcher.lines.some((line) => line.type === "sync"), "the first sync", 600_000);
  return watcher;
}

/** Appends a line to each of `files` in turn; the time until the destination's copy has the new size. */
async function measureEdits(files: string[], share: string, dest: string, label: string): Promise<number[]> {
  const latencies: number[] = [];
  for (const [i, file] of files.entries()) {
    const copy = join(dest, relative(share, file));
    const t0 = performance.now();
    appendFileSync(file, `/* ${label} edit ${i} */\n`);
    const size = statSync(file).size;
    await until(() => statSync(copy, { throwIfNoEntry: false })?.size === size, `${label} edit ${i}`, 30_000);
    latencies.push(performance.now() - t0);
    await sleep(300); // the next edit is a change of its own, not part of this one's batch
  }
  return latencies;
}

function describe(latencies: number[]): { p50: number; p99: number; max: number } {
  const round = (ms: number) => Math.round(ms);
  return {
    p50: round(median(latencies)),
    p99: round(quantile(latencies, 0.99)),
    max: round(Math.max(...latencies)),
  };
}

/** A 1 GiB file of random bytes, written into the share, pulled, then renamed; what the rename moved. */
async function measureRename(
  share: string,
  dest: string,
  watcher: Watcher,
): Promise<Record<string, unknown>> {
  const size = 1024 * 1024 * 1024;
  const path = join(share, "big-original.bin");
  const fd = openSync(path, "w");
  const block = Buffer.allocUnsafe(16 * 1024 * 1024);
  for (let offset = 0; offset < size; offset += block.length) writeSync(fd, randomFillSync(block));
  closeSync(fd);
  await until(
    () => statSync(join(dest, "big-original.bin"), { throwIfNoEntry: false })?.size === size,
    "the 1 GiB file",
    600_000,
  );
  const t0 = performance.now();
  renameSync(path, join(share, "big-renamed.bin"));
  const line = await until(
    () =>
      watcher.lines.find(
        (entry) => Array.isArray(entry.changed) && entry.changed.includes("big-renamed.bin"),
      ),
    "the rename's batch",
    600_000,
  );
  const seconds = (performance.now() - t0) / 1000;
  rmSync(join(share, "big-renamed.bin"));
  rmSync(join(dest, "big-renamed.bin"), { force: true });
  return { bytes: size, bytesFromNetwork: line.bytesFromNetwork, bytesReused: line.bytesReused, seconds };
}

/** The peer: inotifywait on the share, an rsync of each written file to a daemon beside the destination. */
async function measurePeer(
  files: string[],
  share: string,
  dest: string,
  scratch: string,
  netsim: string | undefined,
): Promise<number[]> {
  const config = join(scratch, "rsyncd.conf");
  writeFileSync(
    config,
    [
      "use chroot = no",
      "uid = root",
      "gid = root",
      "[dest]",
      `  path = ${dest}`,
      "  read only = no",
      "",
    ].join("\n"),
  );
  const address = netsim === undefined ? "127.0.0.1" : "10.77.0.1";
  const port = await findFreePort();
  const daemonArgs = [
    "--daemon",
    "--no-detach",
    `--config=${config}`,
    `--port=${port}`,
    `--address=${address}`,
  ];
  const daemon =
    netsim === undefined
      ? spawn("rsync", daemonArgs, { stdio: ["ignore", "ignore", "inherit"] })
      : spawn(netsim, ["exec", NETSIM_NAME, "a", "--", "rsync", ...daemonArgs], {
          stdio: ["ignore", "ignore", "inherit"],
        });
  started.push(daemon);
  const lists = netsim === undefined ? ["rsync"] : [netsim, "exec", NETSIM_NAME, "b", "--", "rsync"];
  await until(
    () => spawnSync(lists[0] as string, [...lists.slice(1), `rsync://${address}:${port}/`]).status === 0,
    "the rsync daemon",
    30_000,
  );
  const loop =
    `inotifywait -m -r -q -e close_write,moved_to --format '%w%f' '${share}' | ` +
    `while read -r p; do rsync -a "$p" "rsync://${address}:${port}/dest/\${p#${share}/}"; done`;
  // Its own process group, so that the loop's inotifywait and rsyncs end with it.
  const pusher =
    netsim === undefined
      ? spawn("bash", ["-c", loop], { detached: true, stdio: ["ignore", "ignore", "inherit"] })
      : spawn(netsim, ["exec", NETSIM_NAME, "b", "--", "bash", "-c", loop], { detached: true });
  started.push(pusher);
  await sleep(5000); // inotifywait -r sets a watch on every folder first
  try {
    return await measureEdits(files, share, dest, "peer");
  } finally {
    if (pusher.pid !== undefined) process.kill(-pusher.pid, "SIGKILL");
    daemon.kill("SIGKILL");
  }
}

function netsimUp(): string | undefined {
  if (flags["no-netsim"]) return undefined;
  const netsim = findNetsim(REPO) ?? "/work/shared/tools/netsim/netsim";
  if (process.getuid?.() !== 0 || !existsSync(netsim)) {
    log("netsim: skipped (needs root and the netsim tool)");
    return undefined;
  }
  spawnSync(netsim, ["down", "--name", NETSIM_NAME]);
  const up = spawnSync(
    netsim,
    ["up", "--name", NETSIM_NAME, "--delay-ms", String(NETSIM_DELAY_MS), "--rate-mbit", "1000"],
    {
      encoding: "utf8",
    },
  );
  if (up.status !== 0) throw new Error(`netsim up: ${up.stderr}`);
  process.on("exit", () => spawnSync(netsim, ["down", "--name", NETSIM_NAME]));
  return netsim;
}

async function main(): Promise<void> {
  // Three folders, none over 3 GB: the share and the destination each hold the tree and, for
  // the rename, a 1 GiB file.
  const [scratch, shareScratch, destScratch] = ["homes", "share", "dest"].map((name) => {
    const path = join(flags.scratch, `watch-bench-${name}-${process.pid}`);
    mkdirSync(path, { recursive: true });
    process.on("exit", () => rmSync(path, { recursive: true, force: true }));
    return path;
  }) as [string, string, string];
  const share = join(shareScratch, "share");
  const dest = join(destScratch, "dest");
  const hostHome = join(scratch, "host-home");
  const clientHome = join(scratch, "client-home");
  mkdirSync(hostHome);
  mkdirSync(clientHome);
  log(`tree: copying ${flags.tree}, topped up to ${TREE_FILES} files`);
  const files = makeShare(flags.tree, share);
  const edited = Array.from(
    { length: EDITS },
    (_, i) => files[Math.floor((i * files.length) / EDITS)] as string,
  );
  const result: Record<string, unknown> = { files: files.length, edits: EDITS };

  const link = await startHost(share, hostHome, undefined);
  const syncStart = performance.now();
  let watcher = await startWatcher(link, dest, clientHome, undefined);
  result.firstSyncSeconds = Number(((performance.now() - syncStart) / 1000).toFixed(1));
  const loopback = describe(await measureEdits(edited, share, dest, "loopback"));
  result.loopback = loopback;
  log(`loopback: one-line edit to visible p50 ${loopback.p50} ms, p99 ${loopback.p99} ms (${EDITS} edits)`);
  if (!flags["no-rename"]) {
    result.rename = await measureRename(share, dest, watcher);
    log(`rename of 1 GiB: ${JSON.stringify(result.rename)}`);
  }
  stopAll();
  started.length = 0;

  const peerReady = flags["no-peer"] ? "--no-peer" : whyNoPeer();
  if (peerReady === null) {
    const peer = describe(await measurePeer(edited, share, dest, scratch, undefined));
    result.peerLoopback = peer;
    log(`loopback, inotifywait+rsync: p50 ${peer.p50} ms, p99 ${peer.p99} ms`);
  } else log(`peer skipped: ${peerReady}`);

  const netsim = netsimUp();
  if (netsim !== undefined) {
    const wanLink = await startHost(share, hostHome, netsim);
    watcher = await startWatcher(wanLink, dest, clientHome, netsim);
    const wan = describe(await measureEdits(edited, share, dest, "netsim"));
    result.netsim = { delayMs: NETSIM_DELAY_MS, ...wan };
    log(`netsim ${2 * NETSIM_DELAY_MS} ms RTT: p50 ${wan.p50} ms, p99 ${wan.p99} ms`);
    stopAll();
    started.length = 0;
    if (peerReady === null) {
      const peer = describe(await measurePeer(edited, share, dest, scratch, netsim));
      result.peerNetsim = peer;
      log(`netsim, inotifywait+rsync: p50 ${peer.p50} ms, p99 ${peer.p99} ms`);
    }
  }
  void watcher;
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function whyNoPeer(): string | null {
  const missing = ensureDebianPackages(["inotify-tools", "rsync"]);
  return missing.size === 0 ? null : [...missing.values()].join("; ");
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log(`watch-latency: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
