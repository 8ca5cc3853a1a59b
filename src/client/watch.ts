/**
 * `pull --watch`: a pull that keeps the destination a mirror of the host's folder as it changes.
 * It subscribes first (WATCH; the host's first CHANGES says it watches), then pulls the whole
 * watched path, then pulls each changed path as the host reports it: unchanged chunks are found
 * on this machine by the chunk index, so an edit moves its changed chunks and a renamed file
 * none (the new name is pulled from the old one's chunks, then the old name removed). A lost
 * connection, a gap in the host's sequence or the host's RESYNC is followed by a sync: the whole
 * watched path pulled again (moving only what changed) and what the host no longer has removed.
 * It reconnects by pull-link's retry policy, counting afresh after each sync.
 */
import { closeSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { withTopFolder } from "../platform/directory-io.js";
import { removeBeneath } from "../platform/remove-beneath.js";
import type { ChunkIndex } from "../store/chunk-index.js";
import type { ShareLink } from "../transport/link.js";
import type { TransportChoice } from "../transport/select.js";
import { isWithin, normalizeUserPath, splitWirePath } from "../wire/path.js";
import { type Changes, ChangesFlag } from "../wire/watch-messages.js";
import { TeleportClient } from "./client.js";
import { openFolders } from "./dest-folders.js";
import { stopSpareStreamWorkers } from "./pool/stream-threads.js";
import { type PullOptions, type PullSummary, pull, type RetryEvent } from "./pull.js";
import { DEFAULT_RETRIES, retryWaitMs } from "./retry-policy.js";

export interface WatchOptions extends Omit<PullOptions, "index" | "onProgress"> {
  /** The chunk index: without one every changed file is fetched whole. */
  index?: ChunkIndex;
  transport?: TransportChoice;
  /** Reconnections after a lost connection, counted afresh after each sync; default DEFAULT_RETRIES. */
  retries?: number;
  /** Told of each sync and each batch of changes once it is in place. */
  onBatch?: (report: WatchReport) => void;
  onRetry?: (event: RetryEvent) => void;
}

/** Why the whole watched path is pulled: the start, a reconnection, a gap in CHANGES, the host's RESYNC. */
export type SyncReason = "start" | "reconnect" | "gap" | "resync";

/** One sync or batch of changes, in place at the destination. */
export type WatchReport =
  | ({ kind: "sync"; reason: SyncReason; files: number } & WatchCounts)
  | ({ kind: "changes"; changed: string[]; removed: string[] } & WatchCounts);

interface WatchCounts {
  bytesFromNetwork: number;
  bytesReused: number;
  /** From the batch's arrival (or the sync's start) to its last path in place. */
  seconds: number;
}

/** A batch of CHANGES frames (MORE flags joined), or the reason to sync instead. */
type Batch = { kind: "paths"; changed: string[]; removed: string[] } | { kind: "sync"; reason: SyncReason };

/** Errors of one path's pull that the next batch cures: the host reports the path again. */
const PATH_GONE: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.NOT_FOUND,
  ErrorCode.PATH_ESCAPE,
  ErrorCode.UNSUPPORTED_TYPE,
]);
const PATH_CHANGING: ReadonlySet<ErrorCode> = new Set([ErrorCode.FILE_CHANGED, ErrorCode.CHUNK_CORRUPT]);
/**
 * Removals that are done already: a folder on the way is gone, or is no longer a folder (the host
 * replaced it by a file or symlink, pulled before its old contents are removed).
 */
const REMOVAL_DONE: ReadonlySet<ErrorCode> = new Set([ErrorCode.NOT_FOUND, ErrorCode.UNSAFE_NAME]);

/**
 * Watches `options.remotePath` of the share into `options.dest` until `options.signal` aborts
 * (then rejects with TELEPORT_ERR_CANCELLED), or a failure the retry policy gives up on.
 */
export async function watchLink(link: string | ShareLink, options: WatchOptions): Promise<never> {
  const retries = options.retries ?? DEFAULT_RETRIES;
  const { signal } = options;
  const mirror = new WatchedMirror(options);
  let reason: SyncReason = "start";
  for (let attempt = 0; ; attempt++) {
    try {
      await mirror.run(link, reason);
    } catch (err) {
      const error = toTeleportError(err);
      if (signal?.aborted === true) throw cancelled(error);
      if (mirror.synced) attempt = 0;
      mirror.synced = false;
      const waitMs = retryWaitMs({
        attempt,
        retries,
        code: error.code,
        underway: reason !== "start" || mirror.connected,
        cancelled: false,
        retryAfterMs: error.retryAfterMs,
      });
      if (waitMs === undefined) throw error;
      options.onRetry?.({ type: "retry", attempt: attempt + 1, of: retries, error, waitMs });
      await sleep(waitMs, undefined, signal && { signal }).catch((abort: unknown) => {
        throw cancelled(abort);
      });
      reason = "reconnect";
    }
  }
}

function cancelled(cause: unknown): TeleportError {
  if (cause instanceof TeleportError && cause.code === ErrorCode.CANCELLED) return cause;
  return new TeleportError(ErrorCode.CANCELLED, "watch cancelled", { cause });
}

/** The destination kept a mirror over one connection at a time. */
class WatchedMirror {
  readonly #options: WatchOptions;
  readonly #remote: string;
  /** Components of a wire path above the destination (those of the watched path's parent). */
  readonly #skip: number;
  /** Paths (destination-relative) the host had at the last sync, with changes since. */
  #known = new Set<string>();
  /** The connection got as far as WELCOME (a host unreachable at the start is reported at once). */
  connected = false;
  /** The connection synced: its retries count afresh. */
  synced = false;

  constructor(options: WatchOptions) {
    this.#options = options;
    this.#remote = normalizeUserPath(options.remotePath ?? "");
    this.#skip = Math.max(0, splitWirePath(this.#remote).length - 1);
  }

  /** One connection's watch: subscribe, sync, then each batch, until the connection fails. */
  async run(link: string | ShareLink, reason: SyncReason): Promise<never> {
    const { signal } = this.#options;
    const client = await TeleportClient.connect(link, this.#options);
    this.connected = true;
    try {
      const changes = client.watch(this.#remote, signal);
      const frames = new SequencedFrames(changes);
      await frames.batch(); // the host's first, empty: it watches from here on
      await this.#sync(client, reason);
      this.synced = true;
      for (;;) {
        const batch = await frames.batch();
        if (batch.kind === "sync") await this.#sync(client, batch.reason);
        else await this.#apply(client, batch.changed, batch.removed);
      }
    } finally {
      stopSpareStreamWorkers();
      await client.close();
    }
  }

  /** The whole watched path pulled again, and what the host had at the last sync and lost removed. */
  async #sync(client: TeleportClient, reason: SyncReason): Promise<void> {
    const started = performance.now();
    const summary = await pull(client, this.#pullOptions(this.#remote, this.#options.dest));
    const known = new Set<string>();
    for await (const entry of client.list(this.#remote, { recursive: true, signal: this.#options.signal }))
      known.add(this.#localNames(entry.path).join("/"));
    if (this.#remote !== "") known.add(this.#localNames(this.#remote).join("/"));
    this.#removeLocal([...this.#known].filter((path) => !known.has(path)).sort());
    this.#known = known;
    this.#options.onBatch?.({
      kind: "sync",
      reason,
      files: summary.files,
      ...counts([summary], started),
    });
  }

  async #apply(client: TeleportClient, changedPaths: string[], removedPaths: string[]): Promise<void> {
    const started = performance.now();
    const changed = topmost(changedPaths.filter((path) => isWithin(path, this.#remote)));
    const removed = topmost(removedPaths.filter((path) => isWithin(path, this.#remote)));
    const summaries: PullSummary[] = [];
    for (const path of pullsFor(changed, this.#remote)) {
      const summary = await this.#pullPath(client, path);
      if (summary === "gone") removed.push(path);
      else if (summary !== "changing") summaries.push(summary);
    }
    const local = removed.map((path) => this.#localNames(path).join("/"));
    this.#removeLocal(local);
    for (const path of local) this.#known.delete(path);
    this.#options.onBatch?.({ kind: "changes", changed, removed, ...counts(summaries, started) });
  }

  /** One changed path pulled into its folder at the destination (made if missing). */
  async #pullPath(client: TeleportClient, path: string): Promise<PullSummary | "gone" | "changing"> {
    const names = this.#localNames(path);
    const parent = names.slice(0, -1);
    try {
      // Pulled beneath the folder just made, held open: never by its path again.
      const folder = openFolders(this.#options.dest, parent);
      try {
        const options = this.#pullOptions(path, join(this.#options.dest, ...parent));
        const summary = await pull(client, { ...options, destFolder: folder });
        this.#known.add(names.join("/"));
        return summary;
      } finally {
        closeSync(folder.fd);
      }
    } catch (err) {
      const error = toTeleportError(err);
      if (PATH_GONE.has(error.code)) return "gone";
      // Written again as it was pulled: the host reports it again once it settles.
      if (PATH_CHANGING.has(error.code)) return "changing";
      throw error;
    }
  }

  /**
   * Removes `paths` (destination-relative; "" is the destination, never removed) with what they
   * hold, confined beneath the destination; fails on the first path the file system refuses.
   */
  #removeLocal(paths: string[]): void {
    const { dest } = this.#options;
    const beneath = paths.filter((path) => path !== "");
    if (beneath.length === 0) return;
    const report = withTopFolder(dest, (root) => removeBeneath(root, beneath));
    const failure = report.failures.find(({ code }) => !REMOVAL_DONE.has(code));
    if (failure !== undefined)
      throw new TeleportError(failure.code, `removing ${failure.path} in ${dest}: ${failure.message}`);
  }

  #pullOptions(remotePath: string, dest: string): PullOptions {
    const {
      onBatch: _batch,
      onRetry: _retry,
      retries: _retries,
      transport: _transport,
      ...pullOptions
    } = this.#options;
    return { ...pullOptions, remotePath, dest };
  }

  /** The names of a wire path beneath the watched one, from the destination down. */
  #localNames(path: string): string[] {
    return splitWirePath(path).slice(this.#skip);
  }
}

function counts(summaries: PullSummary[], started: number): WatchCounts {
  let bytesFromNetwork = 0;
  let bytesReused = 0;
  for (const summary of summaries) {
    bytesFromNetwork += summary.bytesFromNetwork;
    bytesReused += summary.bytesReused;
  }
  return { bytesFromNetwork, bytesReused, seconds: (performance.now() - started) / 1000 };
}

/** `paths` without those beneath another of them (a folder pulled or removed whole covers them). */
export function topmost(paths: string[]): string[] {
  const sorted = [...new Set(paths)].sort();
  const kept: string[] = [];
  for (const path of sorted) {
    const last = kept.at(-1);
    if (last === undefined || !isWithin(path, last)) kept.push(path);
  }
  return kept;
}

/**
 * Changed paths in a folder, from which the folder is pulled whole instead: each pull starts its
 * own data streams (~0.1 s on loopback), while the files of a folder pull that did not change
 * are passed over in a few microseconds each.
 */
export const FOLDER_PULL_MIN_PATHS = 8;

/**
 * What to pull for `changed` beneath `remote`: the topmost paths, those of a folder with at
 * least FOLDER_PULL_MIN_PATHS of them replaced by the folder.
 */
export function pullsFor(changed: string[], remote: string): string[] {
  const paths = topmost(changed);
  const byFolder = new Map<string, number>();
  for (const path of paths) {
    if (path === remote) continue;
    const folder = parentOf(path);
    byFolder.set(folder, (byFolder.get(folder) ?? 0) + 1);
  }
  const folders = [...byFolder]
    .filter(([, count]) => count >= FOLDER_PULL_MIN_PATHS)
    .map(([folder]) => folder);
  return folders.length === 0 ? paths : topmost([...paths, ...folders]);
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "" : path.slice(0, slash);
}

/**
 * `paths` as the host sent them, each a wire path (no "..", no absolute path, no empty name):
 * a host that sends anything else is broken or hostile, and the watch ends with PROTOCOL.
 */
export function checkedPaths(paths: string[]): string[] {
  for (const path of paths) {
    try {
      splitWirePath(path);
    } catch (err) {
      throw new TeleportError(ErrorCode.PROTOCOL, `the host reported a change to "${path}"`, { cause: err });
    }
  }
  return paths;
}

/** CHANGES frames checked for gaps in their sequence, and joined into batches. */
class SequencedFrames {
  readonly #frames: AsyncIterator<Changes>;
  #expected = 1;

  constructor(frames: AsyncIterator<Changes>) {
    this.#frames = frames;
  }

  async #next(): Promise<Changes> {
    const step = await this.#frames.next();
    if (step.done === true) throw new TeleportError(ErrorCode.CONNECTION, "the host stopped watching");
    return step.value;
  }

  /** The next batch: its frames up to one without MORE, or a sync if one was lost or asked for. */
  async batch(): Promise<Batch> {
    const changed: string[] = [];
    const removed: string[] = [];
    let sync: SyncReason | undefined;
    for (;;) {
      const frame = await this.#next();
      if (frame.sequence !== this.#expected) sync ??= "gap";
      this.#expected = frame.sequence + 1;
      if ((frame.flags & ChangesFlag.RESYNC) !== 0) sync ??= "resync";
      changed.push(...checkedPaths(frame.changed));
      removed.push(...checkedPaths(frame.removed));
      if ((frame.flags & ChangesFlag.MORE) === 0) break;
    }
    return sync === undefined ? { kind: "paths", changed, removed } : { kind: "sync", reason: sync };
  }
}
