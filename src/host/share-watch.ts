/**
 * WATCH (Feature.WATCH, `pull --watch`): a client subscribes to a path of the share and is sent
 * CHANGES frames, batch by batch (change-batcher.ts), until it cancels. The share is watched
 * (@parcel/watcher: one inotify watch per folder) only while someone subscribes, by one watcher
 * per share per thread that every subscription of the thread shares: the watcher costs a
 * folder walk to start and memory per folder, not per client.
 */
import { join } from "node:path";
import type { AsyncSubscription, Event } from "@parcel/watcher";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import type { SendFrame } from "../serve/manifest-stream.js";
import type { Share } from "../serve/share.js";
import { EntryKind, MessageType } from "../wire/messages.js";
import { isWithin, splitWirePath } from "../wire/path.js";
import {
  type Changes,
  ChangesFlag,
  changesCodec,
  MAX_CHANGED_PATHS,
  MAX_CHANGES_PATH_BYTES,
} from "../wire/watch-messages.js";
import { type ChangeBatch, ChangeBatcher, type PathState, type RawChange } from "./change-batcher.js";

/** Told of each change the watcher reports beneath the share root, as a wire path. */
type ChangeListener = (path: string, change: RawChange) => void;

/** One share's watcher, started by its first subscriber and stopped with its last. */
class ShareWatcher {
  readonly #share: Share;
  readonly #listeners = new Set<ChangeListener>();
  /** Told when the watcher fails: what it would have reported is lost. */
  readonly #onLost = new Set<() => void>();
  #subscription: Promise<AsyncSubscription> | undefined;

  constructor(share: Share) {
    this.#share = share;
  }

  /** Starts listening (and the watcher, if it is the first); resolves once changes are seen. */
  async add(listener: ChangeListener, onLost: () => void): Promise<void> {
    this.#listeners.add(listener);
    this.#onLost.add(onLost);
    this.#subscription ??= this.#start();
    await this.#subscription;
  }

  remove(listener: ChangeListener, onLost: () => void): void {
    this.#listeners.delete(listener);
    this.#onLost.delete(onLost);
    if (this.#listeners.size > 0 || this.#subscription === undefined) return;
    const subscription = this.#subscription;
    this.#subscription = undefined;
    void subscription.then((watching) => watching.unsubscribe()).catch(() => {});
  }

  async #start(): Promise<AsyncSubscription> {
    let watcher: typeof import("@parcel/watcher");
    try {
      watcher = await import("@parcel/watcher");
    } catch (err) {
      throw new TeleportError(ErrorCode.WATCH_UNSUPPORTED, "this host has no file watcher", { cause: err });
    }
    // The host's own state (the chunk index it writes as it serves) is never announced: shared
    // along with a home folder, each pull would otherwise announce a change to it, and so on.
    const stateFolder = this.#share.stateFolderPath();
    try {
      return await watcher.subscribe(this.#share.root, (err, events) => this.#deliver(err, events), {
        ignore: stateFolder === undefined ? [] : [join(this.#share.root, stateFolder)],
      });
    } catch (err) {
      this.#subscription = undefined;
      throw toTeleportError(err, `watching ${this.#share.root}`);
    }
  }

  #deliver(err: Error | null, events: Event[]): void {
    if (err !== null) {
      for (const lost of this.#onLost) lost();
      return;
    }
    const prefix = `${this.#share.root}/`;
    for (const event of events) {
      // Nothing outside the share is ever reported, nor a name the wire would refuse.
      if (!event.path.startsWith(prefix)) continue;
      const path = event.path.slice(prefix.length);
      if (!isWirePath(path) || !this.#share.serves(path)) continue; // the state folder, renamed since
      for (const listener of this.#listeners) listener(path, event.type);
    }
  }
}

function isWirePath(path: string): boolean {
  try {
    splitWirePath(path);
    return true;
  } catch {
    return false;
  }
}

/** This thread's watchers, by share root. */
const watchers = new Map<string, ShareWatcher>();

function watcherOf(share: Share): ShareWatcher {
  let watcher = watchers.get(share.root);
  if (watcher === undefined) {
    watcher = new ShareWatcher(share);
    watchers.set(share.root, watcher);
  }
  return watcher;
}

/**
 * Serves one WATCH request: an empty CHANGES once the share is watched, then a CHANGES per batch
 * beneath `path`, until `signal` (the client's CANCEL, or its connection closing).
 */
export async function watchShare(
  share: Share,
  path: string,
  send: SendFrame,
  signal: AbortSignal,
): Promise<void> {
  const top = share.stat(path); // refuses what is not there, or not inside
  if (top.entry.kind !== EntryKind.DIRECTORY && top.entry.kind !== EntryKind.FILE)
    throw new TeleportError(ErrorCode.UNSUPPORTED_TYPE, `"${path}" is not a file or folder`);
  const subscription = new Subscription(share, path, send, signal);
  const watcher = watcherOf(share);
  const listener: ChangeListener = (changed, change) => subscription.add(changed, change);
  const lost = () => subscription.lose();
  try {
    await watcher.add(listener, lost);
    await subscription.run();
  } finally {
    watcher.remove(listener, lost);
    subscription.stop();
  }
}

/** One client's view of a watched share: its batcher, its timer and its frames. */
class Subscription {
  readonly #share: Share;
  readonly #path: string;
  readonly #send: SendFrame;
  readonly #signal: AbortSignal;
  readonly #batcher = new ChangeBatcher();
  #sequence = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Wakes run() when a batch may be due. */
  #wake: (() => void) | undefined;

  constructor(share: Share, path: string, send: SendFrame, signal: AbortSignal) {
    this.#share = share;
    this.#path = path;
    this.#send = send;
    this.#signal = signal;
  }

  add(path: string, change: RawChange): void {
    if (!isWithin(path, this.#path)) return;
    this.#batcher.add(path, change, performance.now());
    this.#arm();
  }

  /** The watcher lost events: the client resyncs. */
  lose(): void {
    this.#batcher.overflow();
    this.#arm();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#wake?.();
  }

  /** Sends batches as they fall due, one at a time (each waits for the client's credit). */
  async run(): Promise<void> {
    await this.#sendBatch({ kind: "paths", changed: [], removed: [] });
    const aborted = new Promise<void>((resolve) => this.#signal.addEventListener("abort", () => resolve()));
    while (!this.#signal.aborted) {
      await Promise.race([aborted, new Promise<void>((resolve) => (this.#wake = resolve))]);
      this.#wake = undefined;
      const batch = this.#batcher.take(performance.now(), (path) => this.#look(path));
      if (batch !== undefined && !this.#signal.aborted) await this.#sendBatch(batch);
      this.#arm();
    }
  }

  #arm(): void {
    if (this.#timer !== undefined) return;
    const delay = this.#batcher.nextCheckIn(performance.now());
    if (delay === undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#wake === undefined) return; // run() is sending, and arms again when done
      this.#wake();
    }, delay);
  }

  #look(path: string): PathState {
    try {
      const { entry } = this.#share.stat(path);
      const ageMs = Date.now() - entry.mtimeMs;
      if (entry.kind === EntryKind.DIRECTORY) return { kind: "folder", ageMs };
      if (entry.kind === EntryKind.FILE) return { kind: "file", ageMs };
      return { kind: "other" };
    } catch {
      return { kind: "gone" }; // gone, or no longer servable: the client removes its copy
    }
  }

  async #sendBatch(batch: ChangeBatch): Promise<void> {
    if (batch.kind === "resync") {
      await this.#sendFrame({ flags: ChangesFlag.RESYNC, changed: [], removed: [] });
      return;
    }
    const frames = framesOf(batch.changed, batch.removed);
    for (const [index, frame] of frames.entries()) {
      const more = index < frames.length - 1 ? ChangesFlag.MORE : 0;
      await this.#sendFrame({ ...frame, flags: more });
    }
  }

  #sendFrame(frame: Omit<Changes, "sequence">): Promise<void> {
    this.#sequence++;
    return this.#send(MessageType.CHANGES, changesCodec, { sequence: this.#sequence, ...frame });
  }
}

/** A batch cut into frames of at most MAX_CHANGED_PATHS paths and MAX_CHANGES_PATH_BYTES bytes. */
export function framesOf(changed: string[], removed: string[]): { changed: string[]; removed: string[] }[] {
  const frames = [{ changed: [] as string[], removed: [] as string[] }];
  let bytes = 0;
  let count = 0;
  const place = (path: string, list: "changed" | "removed") => {
    const size = Buffer.byteLength(path) + 2;
    if (count === MAX_CHANGED_PATHS || bytes + size > MAX_CHANGES_PATH_BYTES) {
      frames.push({ changed: [], removed: [] });
      bytes = 0;
      count = 0;
    }
    frames.at(-1)?.[list].push(path);
    bytes += size;
    count++;
  };
  for (const path of changed) place(path, "changed");
  for (const path of removed) place(path, "removed");
  return frames;
}
