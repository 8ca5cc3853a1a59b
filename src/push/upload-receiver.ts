/**
 * The host's side of an upload (`host --allow-upload`): an upload is checked before anything is
 * written (its folder inside the share, the quota, free space), then, once the pusher has
 * handed the connection over, pulled from the pusher into that folder by the pull's own
 * machinery: every manifest event checked as against a hostile host, chunks the host already
 * holds anywhere (the share indexed, earlier and interrupted uploads) copied locally, the rest
 * fetched over the connection and verified, each file committed by rename when complete.
 */
import { mkdir, realpath, statfs } from "node:fs/promises";
import { dirname, join, sep } from "node:path";
import { TeleportClient } from "../client/client.js";
import { CONTROL_WINDOW_BYTES } from "../client/pull/control-chunks.js";
import { pull } from "../client/pull.js";
import { BufferPool } from "../engine/buffer-pool.js";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import type { AcceptedUpload, UploadReceiver, UploadReceiverFactory } from "../host/host.js";
import type { Share } from "../serve/share.js";
import type { ChunkIndex } from "../store/chunk-index.js";
import type { StateFolder } from "../store/state-folder.js";
import type { TransportStream } from "../transport/transport.js";
import type { UploadRequest } from "../wire/messages.js";
import { normalizeUserPath } from "../wire/path.js";
import { indexShare } from "./share-indexing.js";
import { type PushSummary, pushSummary } from "./summary.js";

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
  return ({ share, index, stateFolder }) => {
    if (options.indexShare !== false) indexShare(share, index, options.onNotice);
    return new ShareUploads(share, index, stateFolder, options);
  };
}

class ShareUploads implements UploadReceiver {
  readonly #share: Share;
  readonly #index: ChunkIndex;
  /** The host's own: no upload writes into it, at its top or anywhere beneath. */
  readonly #stateFolder: StateFolder;
  readonly #options: UploadOptions;

  constructor(share: Share, index: ChunkIndex, stateFolder: StateFolder, options: UploadOptions) {
    this.#share = share;
    this.#index = index;
    this.#stateFolder = stateFolder;
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
    const dest = await this.#folder(request.path);
    const source = normalizeUserPath(request.source);
    return { receive: (stream, secret) => this.#receive(stream, secret, dest, source) };
  }

  /**
   * The folder an upload goes into, made where missing, and checked to be inside the share once
   * made: a name in it that is a symlink out of the share is refused, and so is the host's state
   * folder, before anything is made in it. (The Destination then holds it open and writes every
   * name beneath it relative to that, never into the state folder.)
   */
  async #folder(path: string): Promise<string> {
    const remote = normalizeUserPath(path);
    const dest = join(this.#share.root, remote);
    if (!this.#share.serves(remote) || this.#stateFolder.holds(await nearestReal(dest)))
      throw leadsOut(remote);
    await mkdir(dest, { recursive: true });
    const real = await realpath(dest);
    if (real !== this.#share.root && !real.startsWith(this.#share.root + sep)) throw leadsOut(remote);
    if (this.#stateFolder.holds(real)) throw leadsOut(remote);
    return real;
  }

  async #receive(stream: TransportStream, secret: Buffer, dest: string, source: string): Promise<void> {
    // Keeps every buffer of a window of chunks and those being read: reused, not left to the GC.
    const pool = new BufferPool(2 * CONTROL_WINDOW_BYTES);
    const client = await TeleportClient.over(stream, secret, { clientName: "teleport host", pool });
    try {
      const summary = await pull(client, {
        dest,
        remotePath: source,
        index: this.#index,
        chunksOverControl: true,
        stateFolder: this.#stateFolder,
        ...(this.#options.maxUploadBytes === undefined ? {} : { maxBytes: this.#options.maxUploadBytes }),
      });
      const result: PushSummary = pushSummary(summary);
      client.sendUploadResult({ code: "", message: "", summary: JSON.stringify(result) });
    } catch (err) {
      const error = toTeleportError(err);
      client.sendUploadResult({ code: error.code, message: error.detail, summary: "" });
      throw error;
    } finally {
      await client.close();
    }
  }
}

/** The same answer as for a symlink out of the share: an upload is told nothing more. */
function leadsOut(remote: string): TeleportError {
  return new TeleportError(ErrorCode.PATH_ESCAPE, `"${remote}" leads out of the share`);
}

/** The real path of `path`, or of the nearest folder above it that exists. */
async function nearestReal(path: string): Promise<string> {
  for (let at = path; ; at = dirname(at)) {
    try {
      return await realpath(at);
    } catch (err) {
      if (at === dirname(at)) throw err;
    }
  }
}
