/**
 * teleport as a library: host a folder, connect to a share link, pull, list and read ranges,
 * push into a host that takes uploads (`Host.start({ uploads: uploadReceiver() })`).
 * The CLI (src/cli) is a thin layer over exactly these. This is the package's one entry point
 * (package.json `exports`): what a library user needs is exported here, nothing else is public.
 */
export { type ConnectOptions, type ManifestEvent, TeleportClient } from "./client/client.js";
export { CompressionPolicy, type CompressMode } from "./client/pool/compression-policy.js";
export {
  type EntryFailure,
  type PullEvent,
  type PullOptions,
  type PullSummary,
  pull,
  REUSE_SCOPES,
  type ReusedBytes,
  type ReuseScope,
} from "./client/pull.js";
export {
  DEFAULT_RETRIES,
  type PullLinkOptions,
  type PullLinkSummary,
  pullLink,
  type Retry,
} from "./client/pull-link.js";
export { ErrorCode, isErrorCode, isTeleportError, TeleportError } from "./errors.js";
export { Host, type HostOptions } from "./host/host.js";
export { type PushOptions, type PushSummary, push, pushDryRun } from "./push/pusher.js";
export { type UploadOptions, uploadReceiver } from "./push/upload-receiver.js";
export { ChunkIndex, type IndexStats } from "./store/chunk-index.js";
export { teleportHome } from "./store/teleport-home.js";
export { formatLink, parseLink, type ShareLink } from "./transport/link.js";
export type { TransportChoice } from "./transport/select.js";
export type { TransportKind } from "./transport/transport.js";
export { type Entry, EntryKind } from "./wire/messages.js";
