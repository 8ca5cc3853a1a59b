/**
 * The host a mount reads from. Every request of the mount asks it for a connected client, so the
 * connection can be replaced (a host that went away and came back) without the readers knowing:
 * a lost connection is dialed again with a backoff for as long as the mount lives, and a request
 * waits for it until its own deadline.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { TeleportClient } from "../client/client.js";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import type { ShareLink } from "../transport/link.js";

/** Dials the host; `onClose` is told once when that connection ends. */
export type HostDialer = (onClose: (error: TeleportError) => void) => Promise<TeleportClient>;

/** Where the mount's connection is: one phase at a time. */
type HostLink =
  | { phase: "connected"; client: TeleportClient; generation: number }
  | { phase: "reconnecting"; next: Promise<void>; generation: number }
  | { phase: "closed" };

/** Waits between dials of a lost host: doubling from 0.5 s, at most 8 s (as pull's retries). */
const FIRST_WAIT_MS = 500;
const MAX_WAIT_MS = 8000;

/** Errors after which a request is worth trying again on the next connection. */
const CONNECTION_LOST: ReadonlySet<ErrorCode> = new Set([ErrorCode.CONNECTION, ErrorCode.TIMEOUT]);

export interface MountHostOptions {
  /** Dials the host again after a lost connection; without it the first client is the only one. */
  dial?: HostDialer;
  /** Told when the connection is lost and when it is back (the CLI prints it). */
  onNotice?: (message: string) => void;
}

export class MountHost {
  readonly #dial: HostDialer | undefined;
  readonly #closing = new AbortController();
  readonly #connectedListeners = new Set<(client: TeleportClient) => void>();
  readonly #onNotice: (message: string) => void;
  #link: HostLink;
  #closed: Promise<void> | undefined;

  /**
   * A MountHost over `client`; with `dial` (how `client` was made, its onClose wired to this
   * host: see `connect`), a lost connection is dialed again, else it stays the one client.
   */
  constructor(client: TeleportClient, options: MountHostOptions = {}) {
    this.#dial = options.dial;
    this.#onNotice = options.onNotice ?? (() => {});
    this.#link = { phase: "connected", client, generation: 1 };
  }

  /** Connects once (failing as `connect` does: a host unreachable at the start is reported at once). */
  static async connect(dial: HostDialer, onNotice?: (message: string) => void): Promise<MountHost> {
    let host: MountHost | undefined;
    let lostEarly: TeleportError | undefined;
    const client = await dial((error) => {
      if (host === undefined) lostEarly = error;
      else host.#lost(1, error);
    });
    host = new MountHost(client, { dial, ...(onNotice === undefined ? {} : { onNotice }) });
    if (lostEarly !== undefined) host.#lost(1, lostEarly);
    return host;
  }

  /** A MountHost dialing `link` with TeleportClient.connect. */
  static forLink(link: string | ShareLink, onNotice?: (message: string) => void): Promise<MountHost> {
    return MountHost.connect((onClose) => TeleportClient.connect(link, { onClose }), onNotice);
  }

  get connected(): boolean {
    return this.#link.phase === "connected";
  }

  /** Counts connections: a request that failed on one may try again once it has moved on. */
  get generation(): number {
    return this.#link.phase === "closed" ? Number.POSITIVE_INFINITY : this.#link.generation;
  }

  /** A connected client; rejects (for the request to answer EIO) when there is none by `signal`. */
  async client(signal: AbortSignal): Promise<TeleportClient> {
    for (;;) {
      signal.throwIfAborted();
      const link = this.#link;
      if (link.phase === "connected") return link.client;
      if (link.phase === "closed") throw new TeleportError(ErrorCode.CANCELLED, "the mount is closing");
      await untilSettled(link.next, signal);
    }
  }

  /**
   * Runs `attempt` until it succeeds, fails for another reason than a lost connection, or
   * `signal` aborts: after a lost connection it waits for the next one and tries again.
   */
  async retrying<T>(signal: AbortSignal, attempt: () => Promise<T>): Promise<T> {
    for (;;) {
      const generation = this.generation;
      try {
        return await attempt();
      } catch (err) {
        if (signal.aborted || !CONNECTION_LOST.has(toTeleportError(err).code)) throw err;
        await this.#movedOn(generation, signal);
      }
    }
  }

  /** Calls `listener` with each new connection's client, the current one first. */
  onConnected(listener: (client: TeleportClient) => void): () => void {
    this.#connectedListeners.add(listener);
    if (this.#link.phase === "connected") listener(this.#link.client);
    return () => this.#connectedListeners.delete(listener);
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      const link = this.#link;
      this.#link = { phase: "closed" };
      this.#closing.abort();
      if (link.phase === "connected") await link.client.close();
    })();
    return this.#closed;
  }

  /** Resolves once a connection later than `generation` is up. */
  async #movedOn(generation: number, signal: AbortSignal): Promise<void> {
    while (this.generation <= generation || !this.connected) {
      signal.throwIfAborted();
      const link = this.#link;
      if (link.phase === "reconnecting") await untilSettled(link.next, signal);
      else if (link.phase === "closed") throw new TeleportError(ErrorCode.CANCELLED, "the mount is closing");
      // Connected still on `generation`: the failure came before the connection's close.
      else await sleep(FIRST_WAIT_MS / 10, undefined, { signal });
    }
  }

  #lost(generation: number, error: TeleportError): void {
    const link = this.#link;
    if (link.phase !== "connected" || link.generation !== generation || this.#dial === undefined) return;
    this.#onNotice(`lost the host (${error.message}); reconnecting`);
    this.#link = { phase: "reconnecting", generation, next: this.#reconnect(generation + 1) };
  }

  /** Dials until connected (or closed), waiting longer after each failure. */
  async #reconnect(generation: number): Promise<void> {
    const signal = this.#closing.signal;
    const dial = this.#dial;
    if (dial === undefined) return;
    for (let attempt = 0; !signal.aborted; attempt++) {
      await sleep(Math.min(FIRST_WAIT_MS * 2 ** attempt, MAX_WAIT_MS), undefined, { signal }).catch(() => {});
      if (signal.aborted) return;
      try {
        let lostEarly: TeleportError | undefined;
        let up = false;
        const client = await dial((error) => {
          if (up) this.#lost(generation, error);
          else lostEarly = error;
        });
        if (signal.aborted) {
          await client.close();
          return;
        }
        up = true;
        this.#link = { phase: "connected", client, generation };
        this.#onNotice("reconnected to the host");
        for (const listener of this.#connectedListeners) listener(client);
        // Lost again before it was up: dial once more (a fresh #reconnect).
        if (lostEarly !== undefined) this.#lost(generation, lostEarly);
        return;
      } catch {
        // Not back yet: the next attempt waits longer.
      }
    }
  }
}

/** Resolves when `work` settles, or rejects with `signal`'s reason when it aborts first. */
function untilSettled(work: Promise<unknown>, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    const done = () => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    };
    work.then(done, done);
  });
}
