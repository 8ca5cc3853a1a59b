/**
 * `teleport push`: the pusher's side of an upload. It dials the host with the write link, asks
 * for the upload (UPLOAD, with what it holds for the host's quota), and once the host has taken
 * it, the two swap roles on that connection: the pusher serves SRC as a host serves its share
 * (a HostSession over a Share of SRC, answering only the host that proves the same write
 * secret), and the host pulls it. The host's pull is the one `teleport pull` runs, so an upload
 * has what a pull has: the manifest first, local copies of chunks the host holds, verification,
 * part files renamed into place, resume.
 */
import { lstat, realpath } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { TeleportClient } from "../client/client.js";
import type { DataStreamFactory } from "../client/pool/data-streams.js";
import type { DryRunReport } from "../client/pull/dry-run.js";
import { DEFAULT_IDLE_TIMEOUT_MS } from "../engine/connection.js";
import { ErrorCode, TeleportError } from "../errors.js";
import { PathFilter } from "../filter/path-filter.js";
import { HostSession } from "../host/session.js";
import { RecentChunks } from "../serve/recent-chunks.js";
import { isWalkFailure, isWalkSkip, Share } from "../serve/share.js";
import { ChunkIndex } from "../store/chunk-index.js";
import { StateFolder } from "../store/state-folder.js";
import { teleportHome } from "../store/teleport-home.js";
import { parseLink, type ShareLink } from "../transport/link.js";
import type { TransportChoice } from "../transport/select.js";
import type { TransportStream } from "../transport/transport.js";
import {
  EntryKind,
  type FilterRule,
  UploadFlag,
  type UploadRequest,
  type UploadResult,
} from "../wire/messages.js";
import { normalizeUserPath } from "../wire/path.js";
import { pusherContext, RECENT_CHUNK_BYTES } from "./pusher-context.js";
import { PusherStreams, type UploadStreams } from "./pusher-streams.js";
import { PusherThreads, pusherThreadCount } from "./pusher-threads.js";
import { type PushSummary, parseDryRunReport, parsePushSummary } from "./summary.js";

export type { PushSummary } from "./summary.js";

export interface PushOptions {
  /** The file or folder to upload. */
  src: string;
  /** The host's write link (`host --allow-upload` prints it second). */
  link: string | ShareLink;
  /**
   * The folder of the share it goes into: a folder's contents land in it, a file lands in it
   * under its own name. Default: the folder's own name; for a file, the share's root.
   */
  remotePath?: string | undefined;
  /** The pusher's chunk index (files unchanged since they were last hashed are not read again); default TELEPORT_HOME's. */
  index?: ChunkIndex | undefined;
  transport?: TransportChoice | undefined;
  idleTimeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  /**
   * Told every PROGRESS_INTERVAL_MS while the host pulls: bytes sent on the connection so far
   * (chunks, and the manifest), and the bytes SRC holds.
   */
  onProgress?: ((sentBytes: number, totalBytes: number) => void) | undefined;
  /**
   * `--delete`: once the upload has succeeded, the host removes what the upload folder holds
   * beyond SRC (not `filters`-excluded names); nothing outside that folder.
   */
  delete?: boolean | undefined;
  /** `--exclude`/`--include`, in the order given (src/filter): applied by the pusher as it serves SRC. */
  filters?: FilterRule[] | undefined;
  /**
   * Threads that serve the data streams the host asks for (pusher-threads.ts; by default one per
   * core beside the main thread's, 1 or 2, for a push of 64 MiB or more); 0 serves them in the
   * main thread, as a push in portable mode or over QUIC does.
   */
  threads?: number | undefined;
}

const PROGRESS_INTERVAL_MS = 500;

/** What SRC is, as the pusher serves it: a share rooted at it (or at a file's folder), and the path to pull. */
/** SRC as a share: the folder served, and the one name in it served for a file ("" for a folder). */
interface SourcePlace {
  root: string;
  path: string;
  /** A file's size (a folder's contents are measured once its share is open). */
  fileBytes: number | undefined;
}

/** SRC, and what of it the host's pull will take, declared in the UPLOAD. */
interface PushSource extends SourcePlace {
  bytes: number;
  files: number;
}

export async function push(options: PushOptions): Promise<PushSummary> {
  const { result, pusherStreams } = await upload(options, false);
  return { ...parsePushSummary(result), pusherStreams };
}

/** `push --dry-run`: the host writes nothing, and says what the push would copy, reuse and delete. */
export async function pushDryRun(options: PushOptions): Promise<DryRunReport> {
  return parseDryRunReport((await upload(options, true)).result);
}

/** How an upload went: its UPLOAD_RESULT's JSON, and where the pusher served the data streams. */
interface UploadServed {
  result: string;
  pusherStreams: NonNullable<PushSummary["pusherStreams"]>;
}

/** The UPLOAD, then SRC served to the host's pull (or dry run). */
async function upload(options: PushOptions, dryRun: boolean): Promise<UploadServed> {
  const link = typeof options.link === "string" ? parseLink(options.link) : options.link;
  if (link.write !== true) {
    throw new TeleportError(ErrorCode.READ_ONLY, "this is a read link: push needs the host's write link");
  }
  const place = await sourcePlace(options.src);
  // A file lands beside what the folder holds: there is no folder of SRC's to mirror.
  if (options.delete === true && place.path !== "")
    throw new TeleportError(ErrorCode.USAGE, "--delete mirrors a folder: SRC is a file");
  const remote = normalizeUserPath(options.remotePath ?? (place.path === "" ? basename(place.root) : ""));
  const home = teleportHome();
  const ownIndex = options.index === undefined ? ChunkIndex.open(home) : undefined;
  // The pusher serves SRC to the host: never its own key and index, should SRC hold them.
  const stateFolder = StateFolder.openIfThere(home);
  let threads: PusherThreads | undefined;
  let share: Share | undefined;
  try {
    share = await Share.open(place.root, { stateFolder });
    const source = await measureSource(share, place, options);
    const client = await TeleportClient.connect(link, {
      clientName: "teleport push",
      upload: true,
      ...(options.transport === undefined ? {} : { transport: options.transport }),
      ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    let stream: TransportStream;
    // How the data streams the host asks for reach it: as this client, on the transport it came over.
    const dataStreams = client.dataStreams({ encrypted: true });
    // Started now, the threads load their code while the host takes the upload (a dry run moves no chunks).
    const threadCount = dryRun ? 0 : pusherThreadCount(dataStreams, source.bytes, options.threads);
    const servedPath = servedPathOf(source);
    const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    threads =
      threadCount > 0
        ? PusherThreads.start(
            { share, stateFolder, home, streams: dataStreams, servedPath, idleTimeoutMs },
            threadCount,
          )
        : undefined;
    try {
      stream = await client.upload(uploadRequest(source, remote, options, dryRun), options.signal);
    } catch (err) {
      await client.close();
      throw err;
    }
    const index = options.index ?? ownIndex;
    if (index === undefined) throw new TeleportError(ErrorCode.INTERNAL, "no chunk index");
    const serving = { share, source, secret: link.secret, index, options, dataStreams, threads };
    return await serveUpload(stream, serving);
  } finally {
    await threads?.close();
    share?.close();
    ownIndex?.close();
    stateFolder?.close();
  }
}

function uploadRequest(
  source: PushSource,
  remote: string,
  options: PushOptions,
  dryRun: boolean,
): UploadRequest {
  const request: UploadRequest = {
    path: remote,
    source: source.path,
    bytes: source.bytes,
    files: source.files,
  };
  const flags = (options.delete === true ? UploadFlag.DELETE : 0) | (dryRun ? UploadFlag.DRY_RUN : 0);
  const filters = options.filters?.length ? options.filters : undefined;
  // A plain push sends UPLOAD as before these fields were added.
  if (flags !== 0 || filters !== undefined) {
    request.flags = flags;
    request.filters = filters;
  }
  return request;
}

interface UploadServing {
  share: Share;
  source: PushSource;
  secret: Buffer;
  index: ChunkIndex;
  options: PushOptions;
  dataStreams: DataStreamFactory;
  /** The stream threads, started with the connection; undefined: the main thread serves the data streams. */
  threads: PusherThreads | undefined;
}

/**
 * Serves SRC on the handed-over stream until the host has pulled it and says how that went
 * (UPLOAD_RESULT), then the host closes the connection.
 */
function serveUpload(stream: TransportStream, serving: UploadServing): Promise<UploadServed> {
  const { share, source, secret, index, options, dataStreams, threads } = serving;
  let result: UploadResult | undefined;
  const context = pusherContext({
    share,
    secret,
    index,
    transport: stream.transport,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    // The small files the walk reads for the manifest, which the threads' streams serve too.
    recent: threads ? new RecentChunks(threads.recentChunks, 0) : RecentChunks.standalone(RECENT_CHUNK_BYTES),
    servedPath: servedPathOf(source),
  });
  context.onUploadResult = (told) => {
    result ??= told;
  };
  const session = new HostSession(stream, context);
  // The host's pull asks for data streams on this connection; the pusher dials them and serves SRC on each too.
  const streams: UploadStreams =
    threads ?? new PusherStreams(dataStreams, (offered) => new HostSession(offered, context));
  context.onUploadStreamWanted = (token) => streams.offer(token);
  const cancel = () => session.destroy();
  options.signal?.addEventListener("abort", cancel, { once: true });
  const { onProgress } = options;
  const progress =
    onProgress &&
    setInterval(
      () => onProgress(stream.stats().bytesSent + streams.bytesSent, source.bytes),
      PROGRESS_INTERVAL_MS,
    ).unref();
  return session.closed.then(async () => {
    await streams.close();
    clearInterval(progress);
    options.signal?.removeEventListener("abort", cancel);
    if (options.signal?.aborted === true) throw new TeleportError(ErrorCode.CANCELLED, "push cancelled");
    if (result === undefined)
      throw new TeleportError(ErrorCode.CONNECTION, "the host ended the upload without saying how it went");
    if (result.code !== "") throw hostRefusal(result);
    const pusherStreams = threads ? { worker: streams.served, main: 0 } : { worker: 0, main: streams.served };
    return { result: result.summary, pusherStreams };
  });
}

function hostRefusal(result: UploadResult): TeleportError {
  const known = Object.values(ErrorCode) as string[];
  const code = known.includes(result.code) ? (result.code as ErrorCode) : ErrorCode.PROTOCOL;
  return new TeleportError(code, `the host: ${result.message}`);
}

async function sourcePlace(src: string): Promise<SourcePlace> {
  const path = await realpath(src).catch(() => {
    throw new TeleportError(ErrorCode.NOT_FOUND, `"${src}" does not exist`);
  });
  const stats = await lstat(path);
  if (stats.isFile()) return { root: dirname(path), path: basename(path), fileBytes: stats.size };
  if (!stats.isDirectory())
    throw new TeleportError(ErrorCode.UNSUPPORTED_TYPE, `"${src}" is not a file or folder`);
  return { root: path, path: "", fileBytes: undefined };
}

/** For a push of one file, the one name served in its folder (SessionContext.servedPath). */
function servedPathOf(place: SourcePlace): string | undefined {
  return place.path === "" ? undefined : place.path;
}

/** Entries walked between two yields to the event loop (a signal, Ctrl-C): a few milliseconds. */
const MEASURE_SLICE = 2000;

/**
 * What the host's pull will take of SRC, for the UPLOAD's declaration (the host's quota and
 * free-space checks, before the manifest): a folder's files and bytes, walked as the manifest
 * will walk them (Share.walk: beneath folder descriptors, symlinks not followed, the state folder
 * and what the push's --exclude rules leave out not entered), a slice at a time. A folder that
 * cannot be listed counts for nothing here; the manifest's walk reports it.
 */
async function measureSource(share: Share, place: SourcePlace, options: PushOptions): Promise<PushSource> {
  if (place.fileBytes !== undefined) return { ...place, bytes: place.fileBytes, files: 1 };
  let bytes = 0;
  let files = 0;
  let slice = 0;
  const exclude = PathFilter.forRequest(options.filters, "");
  for (const item of share.walk("", { exclude, signal: options.signal })) {
    if (!isWalkFailure(item) && !isWalkSkip(item) && item.entry.kind === EntryKind.FILE) {
      files++;
      bytes += item.entry.size;
    }
    if (++slice === MEASURE_SLICE) {
      slice = 0;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  return { ...place, bytes, files };
}
