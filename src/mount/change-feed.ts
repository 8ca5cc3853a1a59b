/**
 * The host's change notifications (WATCH, as `pull --watch` uses them) feeding a mount's
 * listings: each connection subscribes to the mounted folder; its CHANGES make the folders
 * involved be listed again at once. While no subscription is live (a host without WATCH, or
 * between a lost connection and the next) listings age by their TTL; a subscription made after
 * one was lost, a gap in the host's sequence or its RESYNC lists everything again.
 */
import type { TeleportClient } from "../client/client.js";
import { checkedPaths } from "../client/watch.js";
import { ErrorCode, toTeleportError } from "../errors.js";
import { ChangesFlag } from "../wire/watch-messages.js";
import type { FolderListings } from "./folder-listings.js";
import type { MountHost } from "./mount-host.js";

const RESYNC_TIMEOUT_MS = 10 * 60_000;

export class ChangeFeed {
  readonly #listings: FolderListings;
  readonly #path: string;
  readonly #stopping = new AbortController();
  readonly #onNotice: (message: string) => void;
  #stopListening: () => void = () => {};
  #resolveStarted: (watching: boolean) => void = () => {};

  constructor(listings: FolderListings, path: string, onNotice: (message: string) => void = () => {}) {
    this.#listings = listings;
    this.#path = path;
    this.#onNotice = onNotice;
  }

  /**
   * Subscribes on every connection `host` makes from now on, the current one first; resolves
   * true once the first subscription is live (everything is listed again from then on, in the
   * background), false if the host has no WATCH or the subscription failed (the caller lists,
   * and listings age by their TTL).
   */
  start(host: MountHost): Promise<boolean> {
    const started = new Promise<boolean>((resolve) => {
      this.#resolveStarted = resolve;
    });
    this.#stopListening = host.onConnected((client) => {
      void this.#follow(client);
    });
    return started;
  }

  stop(): void {
    this.#stopListening();
    this.#stopping.abort();
  }

  /** One connection's subscription, until it ends. */
  async #follow(client: TeleportClient): Promise<void> {
    const signal = this.#stopping.signal;
    let expected = 1;
    try {
      for await (const frame of client.watch(this.#path, signal)) {
        const gap = frame.sequence !== expected;
        expected = frame.sequence + 1;
        if (frame.sequence === 1) {
          // The host watches from here on: listed now, the tree misses no change. Changes
          // reported meanwhile wait for the listing (the loop reads no frame until it is done).
          this.#listings.watched = true;
          this.#resolveStarted(true);
          await this.#resync(client);
        } else if (gap || (frame.flags & ChangesFlag.RESYNC) !== 0) {
          await this.#resync(client);
        } else {
          this.#listings.changed([...checkedPaths(frame.changed), ...checkedPaths(frame.removed)]);
        }
      }
    } catch (err) {
      const error = toTeleportError(err);
      if (error.code === ErrorCode.WATCH_UNSUPPORTED)
        this.#onNotice("the host sends no change notifications: listings are refreshed by --ttl");
    } finally {
      // Until the next connection subscribes, listings age by their TTL.
      this.#listings.watched = false;
      this.#resolveStarted(false);
    }
  }

  async #resync(client: TeleportClient): Promise<void> {
    const signal = AbortSignal.any([this.#stopping.signal, AbortSignal.timeout(RESYNC_TIMEOUT_MS)]);
    await this.#listings.resync(client, signal);
  }
}
