/**
 * What a watched share tells a subscriber, and when: the watcher's raw events are gathered into
 * batches. A batch is cut once the share has been quiet for QUIET_MS, longer the more paths it
 * holds (a burst of a thousand new files arrives as one batch), or CAP_MS after its first event however busy the share is. A file
 * is announced only once it has settled (no event for it and an mtime at least SETTLE_MS old),
 * so a file still being written is held back, not sent half-written. Pure policy: the clock and
 * the look at the disk are passed in, so it is tested on model timelines
 * (test/unit/change-batcher.test.ts); host/share-watch.ts runs it.
 */

/** Quiet time that ends a batch of one path. */
export const QUIET_MS = 200;
/**
 * Quiet time added per further path, up to MAX_QUIET_MS. The watcher hands over the events of a
 * burst that goes on every 500 ms (@parcel/watcher's longest wait), so a batch of several paths
 * waits longer than that for more: a burst of a thousand files stays one batch, while a lone
 * edit is announced after QUIET_MS. Twice that wait, as a loaded machine hands events over late:
 * at 600 ms the last file of a burst came in a batch of its own under load.
 */
export const QUIET_MS_PER_PATH = 100;
export const MAX_QUIET_MS = 1000;
/**
 * A new file is held while its folder changed more recently than this: names are still being
 * added there, and the watcher may be sitting on their events (it hands them over every 500 ms,
 * later on a loaded machine).
 */
export const FOLDER_SETTLE_MS = 1000;
/** How long a file must be left alone before it is announced. */
export const SETTLE_MS = 250;
/** The longest a batch stays open while events keep coming. */
export const CAP_MS = 3000;
/** How soon to look again at a batch waiting for its files to settle. */
export const RECHECK_MS = 50;
/** A file written without a pause for this long is announced as it is (a log, say). */
export const MAX_UNSETTLED_MS = 30_000;
/**
 * Paths held at most: past it they are forgotten and the subscriber told to resync the whole
 * watched path, so a host's memory does not grow with the churn of a share nobody reads.
 */
export const MAX_PENDING_PATHS = 65_536;

/** What the watcher said of a path: created (or appeared by a rename), written, or gone. */
export type RawChange = "create" | "update" | "delete";

/** A path as the disk has it now, for the settle check. */
export type PathState =
  | { kind: "gone" }
  /** `ageMs`: since its mtime (a name added or removed), by the host's clock. */
  | { kind: "folder"; ageMs: number }
  /** `ageMs`: since its mtime, by the host's clock. */
  | { kind: "file"; ageMs: number }
  /** Anything else the share serves (a symlink): announced as it is. */
  | { kind: "other" };

/** One batch for the subscriber: wire paths, or a resync of everything watched. */
export type ChangeBatch = { kind: "paths"; changed: string[]; removed: string[] } | { kind: "resync" };

interface PendingPath {
  change: RawChange;
  /** When the last event for it came (the batcher's clock). */
  lastEventAt: number;
  firstEventAt: number;
}

export class ChangeBatcher {
  readonly #pending = new Map<string, PendingPath>();
  #overflowed = false;
  /** When the oldest event of the open batch came; undefined with nothing open. */
  #openedAt: number | undefined;
  #lastEventAt = 0;

  /** Whether anything waits to be announced. */
  get idle(): boolean {
    return this.#pending.size === 0 && !this.#overflowed;
  }

  add(path: string, change: RawChange, now: number): void {
    this.#openedAt ??= now;
    this.#lastEventAt = now;
    if (this.#overflowed) return;
    const known = this.#pending.get(path);
    // A path created in this batch and written again is still new (a folder created stays a
    // folder to pull whole); a delete then create is a create.
    const kept = known?.change === "create" && change === "update" ? "create" : change;
    this.#pending.set(path, { change: kept, lastEventAt: now, firstEventAt: known?.firstEventAt ?? now });
    if (this.#pending.size > MAX_PENDING_PATHS) this.overflow();
  }

  /** Forgets every path held; the next batch tells the subscriber to resync. */
  overflow(): void {
    this.#openedAt ??= this.#lastEventAt;
    this.#pending.clear();
    this.#overflowed = true;
  }

  /** When to look again (ms from `now`), or undefined with nothing held. */
  nextCheckIn(now: number): number | undefined {
    if (this.idle || this.#openedAt === undefined) return undefined;
    const dueAt = Math.min(this.#lastEventAt + this.#quietMs(), this.#openedAt + CAP_MS);
    // Past due with files still settling: look again shortly.
    return dueAt > now ? dueAt - now : RECHECK_MS;
  }

  /**
   * The batch due at `now`, or undefined while it is not: the share is not quiet yet and the cap
   * has not passed, or every path held is still settling. What is still settling stays for
   * the next batch.
   */
  take(now: number, look: (path: string) => PathState): ChangeBatch | undefined {
    if (this.#openedAt === undefined) return undefined;
    const quiet = now - this.#lastEventAt >= this.#quietMs();
    const capped = now - this.#openedAt >= CAP_MS;
    if (!quiet && !capped) return undefined;
    if (this.#overflowed) {
      this.#overflowed = false;
      this.#openedAt = undefined;
      return { kind: "resync" };
    }
    const batch = this.#settled(now, look, capped);
    if (batch === undefined) return undefined;
    this.#openedAt = this.#pending.size === 0 ? undefined : now;
    return batch;
  }

  #quietMs(): number {
    return Math.min(QUIET_MS + QUIET_MS_PER_PATH * Math.max(0, this.#pending.size - 1), MAX_QUIET_MS);
  }

  /**
   * The settled paths, taken out of the pending ones. Before the cap, a batch waits for all of
   * its files to settle (a burst stays one batch); at the cap, the settled ones go and the rest
   * wait.
   */
  #settled(
    now: number,
    look: (path: string) => PathState,
    capped: boolean,
  ): { kind: "paths"; changed: string[]; removed: string[] } | undefined {
    const changed: string[] = [];
    const removed: string[] = [];
    const ignored: string[] = [];
    const folderAges = new Map<string, number>();
    const folderAge = (folder: string) => {
      let age = folderAges.get(folder);
      if (age === undefined) {
        const state = look(folder);
        age = state.kind === "folder" ? state.ageMs : Number.POSITIVE_INFINITY;
        folderAges.set(folder, age);
      }
      return age;
    };
    for (const [path, pending] of this.#pending) {
      const verdict = this.#verdict(path, pending, now, look, folderAge);
      if (verdict === "removed") removed.push(path);
      else if (verdict === "changed") changed.push(path);
      else if (verdict === "ignored") ignored.push(path);
      // Unsettled: at the cap the settled ones go and this one waits; before it, all wait.
      else if (!capped) return undefined;
    }
    for (const path of [...changed, ...removed, ...ignored]) this.#pending.delete(path);
    if (changed.length === 0 && removed.length === 0) return undefined;
    return { kind: "paths", changed, removed };
  }

  #verdict(
    path: string,
    pending: PendingPath,
    now: number,
    look: (path: string) => PathState,
    folderAge: (folder: string) => number,
  ): "changed" | "removed" | "unsettled" | "ignored" {
    if (pending.change === "delete") return "removed";
    const state = look(path);
    switch (state.kind) {
      case "gone":
        return "removed";
      case "folder":
        // A folder written to (a name added or removed): its entries come on their own.
        return pending.change === "create" ? "changed" : "ignored";
      case "other":
        return "changed";
      case "file": {
        if (now - pending.firstEventAt >= MAX_UNSETTLED_MS) return "changed";
        const left = now - pending.lastEventAt >= SETTLE_MS && state.ageMs >= SETTLE_MS;
        const burstOver = pending.change !== "create" || folderAge(parentOf(path)) >= FOLDER_SETTLE_MS;
        return left && burstOver ? "changed" : "unsettled";
      }
    }
  }
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "" : path.slice(0, slash);
}
