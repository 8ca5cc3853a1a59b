/**
 * The host's side of an upload (`host --allow-upload`): an upload is checked before anything is
 * written (its folder inside the share, the quota, free space), then, once the pusher has
 * handed the connection over, pulled from the pusher into that folder by the pull's own
 * machinery: every manifest event checked as against a hostile host, chunks the host already
 * holds anywhere (the share indexed, earlier and interrupted uploads) copied locally, the rest
 * fetched over the connection and verified, each file committed by rename when complete.
 */
import { closeSync, openSync } from "node:fs";
import { mkdtemp, rmdir, statfs } from "node:fs/promises";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TeleportClient } from "../client/client.js";
import { CONTROL_WINDOW_BYTES } from "../client/pull/control-chunks.js";
import { dryRun } from "../client/pull/dry-run.js";
import { type PullOptions, type PullSummary, pull } from "../client/pull.js";
import { BufferPool } from "../engine/buffer-pool.js";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import type { AcceptedUpload, UploadReceiver, UploadReceiverFactory } from "../host/host.js";
import { FOLDER_FLAGS, type OpenFolder } from "../platform/directory-io.js";
import { platformIo } from "../platform/io.js";
import type { Share } from "../serve/share.js";
import type { ChunkIndex } from "../store/chunk-index.js";
import type { StateFolder } from "../store/state-folder.js";
import type { HostIdentity } from "../transport/identity.js";
import type { TransportStream } from "../transport/transport.js";
import { type FilterRule, UploadFlag, type UploadRequest } from "../wire/messages.js";
import { normalizeUserPath } from "../wire/path.js";
import { OfferedStreams, StreamOffers } from "./offered-streams.js";
import { indexShare } from "./share-indexing.js";
import { dryRunResult, pushSummary } from "./summary.js";
import { openUploadFolder } from "./upload-folder.js";

export interface UploadOptions {
  /** Bytes one upload may hold (`host --max-upload-bytes`); unlimited when unset. */
  maxUploadBytes?: number | undefined;
  /** Hash the share in the background as the host starts, so uploads dedup against all of it. */
  indexShare?: boolean | undefined;
  /** Told when the background indexing ends, or why it stopped. */
  onNotice?: ((message: string) => void) | undefined;
  /** How long a pusher has to dial a data stream once asked (default OFFER_TIMEOUT_MS). */
  offerTimeoutMs?: number | undefined;
}

/** The factory `Host.start` takes (HostOptions.uploads). */
export function uploadReceiver(options: UploadOptions = {}): UploadReceiverFactory {
  return (host) => {
    const stopIndexing =
      options.indexShare === false ? undefined : indexShare(host.share, host.index, options.onNotice);
    return new ShareUploads(host, options, stopIndexing);
  };
}

class ShareUploads implements UploadReceiver {
  readonly #share: Share;
  readonly #index: ChunkIndex;
  /** The host's own: no upload writes into it, at its top or anywhere beneath. */
  readonly #stateFolder: StateFolder;
  readonly #identity: Pick<HostIdentity, "keyPem" | "certPem">;
  readonly #options: UploadOptions;
  /** The data streams uploads' pulls have asked their pushers for. */
  readonly #offers: StreamOffers;
  readonly #stopIndexing: (() => void) | undefined;

  constructor(
    host: Parameters<UploadReceiverFactory>[0],
    options: UploadOptions,
    stopIndexing: (() => void) | undefined,
  ) {
    this.#stopIndexing = stopIndexing;
    this.#share = host.share;
    this.#index = host.index;
    this.#stateFolder = host.stateFolder;
    this.#identity = host.identity;
    this.#options = options;
    this.#offers = new StreamOffers(options.offerTimeoutMs);
  }

  async accept(request: UploadRequest, pusher: string | undefined, routed: boolean): Promise<AcceptedUpload> {
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
    const dryRun = ((request.flags ?? 0) & UploadFlag.DRY_RUN) !== 0;
    const mirror = ((request.flags ?? 0) & UploadFlag.DELETE) !== 0;
    // --delete removes within the upload's folder: never across the whole share.
    if (mirror && normalizeUserPath(request.path) === "")
      throw new TeleportError(
        ErrorCode.USAGE,
        "push --delete needs a folder of the share (--path), not its root",
      );
    const upload: Upload = {
      ...this.#folder(request.path, !dryRun),
      source: normalizeUserPath(request.source),
      delete: mirror,
      dryRun,
      filters: request.filters,
      pusher,
      // Its streams' sockets can go to the pull's threads: routed, and descriptors to hand over.
      routed: routed && platformIo.kind === "native",
    };
    return { receive: (stream, secret) => this.#receive(stream, secret, upload) };
  }

  close(): void {
    this.#stopIndexing?.();
  }

  takeStream(token: Buffer, pusher: string | undefined): AcceptedUpload {
    return this.#offers.take(token, pusher);
  }

  routeStream(route: Buffer, socket: Socket): boolean {
    return this.#offers.route(route, socket);
  }

  /**
   * The folder an upload goes into, made where missing beneath the share root (not for a dry
   * run), a symlink on the way refused, and the host's state folder, before anything is made in
   * it (upload-folder.ts); its wire path and the path it has on the host. Opened again the same
   * way when the upload starts: what this checked is never trusted by path.
   */
  #folder(path: string, make: boolean): { remote: string; dest: string } {
    const remote = normalizeUserPath(path);
    if (!this.#share.serves(remote)) throw leadsOut(remote);
    const folder = this.#openFolder(remote, make);
    if (folder !== undefined) closeSync(folder.fd);
    return { remote, dest: join(this.#share.root, remote) };
  }

  #openFolder(remote: string, make: boolean): OpenFolder | undefined {
    return openUploadFolder(this.#share, remote, {
      make,
      refuse: (stats) => this.#stateFolder.is(stats),
    });
  }

  async #receive(stream: TransportStream, secret: Buffer, upload: Upload): Promise<number> {
    // Keeps every buffer of a window of chunks and those being read: reused, not left to the GC.
    const pool = new BufferPool(2 * CONTROL_WINDOW_BYTES);
    const client = await TeleportClient.over(stream, secret, { clientName: "teleport host", pool });
    // A pusher that dials data streams when asked (and named itself) moves the chunks over them.
    // Routed only over TCP, as the pusher routes them (its data streams take its connection's transport).
    const identity = upload.routed && stream.transport === "tcp" ? this.#identity : undefined;
    const streams =
      client.pusherOffersStreams && upload.pusher !== undefined
        ? new OfferedStreams(client, this.#offers, upload.pusher, identity)
        : undefined;
    let destFolder: OpenFolder | undefined;
    try {
      destFolder = this.#openFolder(upload.remote, !upload.dryRun) ?? (await emptyFolder());
      const options: PullOptions = {
        dest: upload.dest,
        destFolder,
        remotePath: upload.source,
        index: this.#index,
        chunksOverControl: streams === undefined,
        ...(streams === undefined ? {} : { dataStreams: streams }),
        stateFolder: this.#stateFolder,
        delete: upload.delete,
        ...(upload.filters === undefined ? {} : { filters: upload.filters }),
        ...(this.#options.maxUploadBytes === undefined ? {} : { maxBytes: this.#options.maxUploadBytes }),
      };
      if (upload.dryRun) {
        const report = dryRunResult(await dryRun(client, options));
        client.sendUploadResult({ code: "", message: "", summary: JSON.stringify(report) });
        return 0;
      }
      const summary = pushSummary(await pullUpload(client, options, streams));
      client.sendUploadResult({ code: "", message: "", summary: JSON.stringify(summary) });
      return summary.bytesFromNetwork;
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

/**
 * The upload's pull, over the pusher's data streams if it offers them. A pusher that grants
 * them but never opens one (or cannot reach the host a second time) has its upload pulled again
 * over the control connection, resuming what the first pull wrote.
 */
async function pullUpload(
  client: TeleportClient,
  options: PullOptions,
  streams: OfferedStreams | undefined,
): Promise<PullSummary> {
  try {
    return await pull(client, options);
  } catch (err) {
    if (streams?.noneCame !== true) throw err;
    const { dataStreams: _, ...overControl } = options;
    return pull(client, { ...overControl, chunksOverControl: true });
  }
}

/** The same answer as for a symlink out of the share: an upload is told nothing more. */
function leadsOut(remote: string): TeleportError {
  return new TeleportError(ErrorCode.PATH_ESCAPE, `"${remote}" leads out of the share`);
}

/** An upload taken: where it goes, what to pull from the pusher, and how. */
interface Upload {
  /** The folder in the share ("/"-separated) and its path on the host. */
  remote: string;
  dest: string;
  source: string;
  delete: boolean;
  dryRun: boolean;
  filters: FilterRule[] | undefined;
  /** The pusher's control connection (Hello.clientId, hex): its data streams give the same. */
  pusher: string | undefined;
  /** The pusher sends its data streams' tokens as routes, and this host can hand them over. */
  routed: boolean;
}

/**
 * A dry run into a folder the share does not have yet compares with an empty folder of its own
 * (removed at once: the descriptor is all the dry run reads), never with whatever a local user
 * may put at that path meanwhile.
 */
async function emptyFolder(): Promise<OpenFolder> {
  const path = await mkdtemp(join(tmpdir(), "teleport-dry-run-"));
  try {
    return { fd: openSync(path, FOLDER_FLAGS), path };
  } finally {
    await rmdir(path);
  }
}
