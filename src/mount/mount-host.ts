/**
 * The host a mount reads from. Every request of the mount asks it for a connected client, so the
 * connection can be replaced (a host that went away and came back) without the readers knowing.
 */
import type { TeleportClient } from "../client/client.js";

export class MountHost {
  readonly #client: TeleportClient;

  constructor(client: TeleportClient) {
    this.#client = client;
  }

  /** A connected client; rejects (for the request to answer EIO) when there is none by `signal`. */
  async client(signal: AbortSignal): Promise<TeleportClient> {
    signal.throwIfAborted();
    return this.#client;
  }

  close(): Promise<void> {
    return this.#client.close();
  }
}
