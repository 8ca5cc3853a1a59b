/**
 * teleport as a library: host a folder, connect to a share link, pull, list and read ranges.
 * The CLI (src/cli) is a thin layer over exactly these.
 */
export { type ConnectOptions, type ManifestEvent, TeleportClient } from "./client/client.js";
export {
  type PullEvent,
  type PullOptions,
  type PullSummary,
  pull,
  REUSE_SCOPES,
  type ReuseScope,
} from "./client/pull.js";
export { type PullLinkOptions, type PullLinkSummary, pullLink, type Retry } from "./client/pull-link.js";
export { ErrorCode, isTeleportError, TeleportError } from "./errors.js";
export { Host, type HostOptions } from "./host/host.js";
export { formatLink, parseLink, type ShareLink } from "./transport/link.js";
export { type Entry, EntryKind } from "./wire/messages.js";
