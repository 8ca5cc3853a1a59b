/**
 * The host's side of an upload (`host --allow-upload`): an upload is checked before anything is
 * written (its folder inside the share, the quota, free space), then, once the pusher has
 * handed the connection over, pulled from the pusher into that folder by the pull's own
 * machinery: every manifest event checked as against a hostile host, chunks the host already
 * holds anywhere (the share indexed, earlier and interrupted uploads) copied locally, the rest
 * fetched over the connection and verified, each file committed by rename when complete.
 */
import { closeSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { join } from "node:path";
import { TeleportClient } from "../client/client.js";
import { CONTROL_WINDOW_BYTES } from "../client/pull/control-chunks.js";
import { pull } from "../client/pull.js";
import { BufferPool } from "../engine/buffer-pool.js";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import type { AcceptedUpload, UploadReceiver, UploadReceiverFactory } from "../host/host.js";
import type { OpenFolder } from "../platform/directory-io.js";
import type { Share } from "../serve/share.js";
import type { ChunkIndex } from "../store/chunk-index.js";
import type { TransportStream } from "../transport/transport.js";
import type { UploadRequest } from "../wire/messages.js";
import { normalizeUserPath } from "../wire/path.js";
import { indexShare } from "./share-indexing.js";
import { type PushSummary, pushSummary } from "./summary.js";
import { openUploadFolder } from "./upload-folder.js";

export interface UploadOptions {
  /** Bytes one upload may hold (`host --max-upload-bytes`); unlimited when unset. */
  maxUploadBytes?: number | undefined;
  /** Hash the share in the background as the host starts, so uploads dedup against all of it. */
  indexShare?: boolean | undefined;
  /** Told when the background indexing ends, or why it stopped. */
  onNotice?: ((message: string) => void) | undefined;
}

/** The factory `Host.start` takes (HostOptions.uploads). */
export function uploadReceiver(options: UploadOptions = {}): UploadReceiverFactory {
  return ({ share, index }) => {
    if (options.indexShare !== false) indexShare(share, index, options.onNotice);
    return new ShareUploads(share, index, options);
  };
}

class ShareUploads implements UploadReceiver {
  readonly #share: Share;
  readonly #index: ChunkIndex;
  readonly #options: UploadOptions;

  constructor(share: Share, index: ChunkIndex, options: UploadOptions) {
    this.#share = share;
    this.#index = index;
    this.#options = options;
  }

  async accept(request: UploadRequest): Promise<AcceptedUpload> {
    const { maxUploadBytes } = this.#options;
    if (maxUploadBytes !== undefined && request.bytes > maxUploadBytes) {
      throw new TeleportError(
        ErrorCode.QUOTA,
        `the upload holds ${request.bytes} bytes; this host takes at most ${maxUploadBytes}`,
      );
    }
    const space = await statfs(this.#share.root);
    const free = Number(space.bavail) * Number(space.bsize);
    if (request.bytes > free) {
      throw new TeleportError(
        ErrorCode.NO_SPACE,
        `the upload holds ${request.bytes} bytes; the host has ${free} free`,
      );
    }
    const folder = this.#folder(request.path);
    const source = normalizeUserPath(request.source);
    return { receive: (stream, secret) => this.#receive(stream, secret, folder, source) };
  }

  /**
   * The folder an upload goes into, made where missing beneath the share root, a symlink on the
   * way refused (upload-folder.ts); its wire path and the path it has on the host. Opened again
   * the same way when the upload starts: what this checked is never trusted by path.
   */
  #folder(path: string): { remote: string; dest: string } {
    const remote = normalizeUserPath(path);
    closeSync(openUploadFolder(this.#share, remote).fd);
    return { remote, dest: join(this.#share.root, remote) };
  }

  async #receive(
    stream: TransportStream,
    secret: Buffer,
    folder: { remote: string; dest: string },
    source: string,
  ): Promise<void> {
    // Keeps every buffer of a window of chunks and those being read: reused, not left to the GC.
    const pool = new BufferPool(2 * CONTROL_WINDOW_BYTES);
    const client = await TeleportClient.over(stream, secret, { clientName: "teleport host", pool });
    let destFolder: OpenFolder | undefined;
    try {
      destFolder = openUploadFolder(this.#share, folder.remote);
      const summary = await pull(client, {
        dest: folder.dest,
        destFolder,
        remotePath: source,
        index: this.#index,
        chunksOverControl: true,
        ...(this.#options.maxUploadBytes === undefined ? {} : { maxBytes: this.#options.maxUploadBytes }),
      });
      const result: PushSummary = pushSummary(summary);
      client.sendUploadResult({ code: "", message: "", summary: JSON.stringify(result) });
    } catch (err) {
      const error = toTeleportError(err);
      client.sendUploadResult({ code: error.code, message: error.detail, summary: "" });
      throw error;
    } finally {
      if (destFolder !== undefined) closeSync(destFolder.fd);
      await client.close();
    }
  }
}
