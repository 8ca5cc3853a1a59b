/**
 * Every error teleport raises carries a stable string code, repeated in the message so that
 * users, scripts and tests can match on it. The CLI prints `message` and `hint`, never a stack.
 */

export const ErrorCode = {
  USAGE: "TELEPORT_ERR_USAGE",
  BAD_LINK: "TELEPORT_ERR_BAD_LINK",
  AUTH: "TELEPORT_ERR_AUTH",
  FINGERPRINT: "TELEPORT_ERR_FINGERPRINT",
  VERSION: "TELEPORT_ERR_VERSION",
  PROTOCOL: "TELEPORT_ERR_PROTOCOL",
  FRAME_TOO_LARGE: "TELEPORT_ERR_FRAME_TOO_LARGE",
  CONNECTION: "TELEPORT_ERR_CONNECTION",
  TIMEOUT: "TELEPORT_ERR_TIMEOUT",
  CANCELLED: "TELEPORT_ERR_CANCELLED",
  PATH_ESCAPE: "TELEPORT_ERR_PATH_ESCAPE",
  UNSAFE_NAME: "TELEPORT_ERR_UNSAFE_NAME",
  NOT_FOUND: "TELEPORT_ERR_NOT_FOUND",
  NOT_A_FILE: "TELEPORT_ERR_NOT_A_FILE",
  UNSUPPORTED_TYPE: "TELEPORT_ERR_UNSUPPORTED_TYPE",
  CHUNK_CORRUPT: "TELEPORT_ERR_CHUNK_CORRUPT",
  FILE_CHANGED: "TELEPORT_ERR_FILE_CHANGED",
  RANGE: "TELEPORT_ERR_RANGE",
  NO_SPACE: "TELEPORT_ERR_NO_SPACE",
  PERMISSION: "TELEPORT_ERR_PERMISSION",
  /** A pull that completed except for entries the host could not read. */
  PARTIAL: "TELEPORT_ERR_PARTIAL",
  IO: "TELEPORT_ERR_IO",
  /** A transport asked for that this machine cannot use (QUIC without its native binding). */
  UNAVAILABLE: "TELEPORT_ERR_UNAVAILABLE",
  ENCRYPTION_REQUIRED: "TELEPORT_ERR_ENCRYPTION_REQUIRED",
  /** The host is serving all the clients it takes: retry after the time it names (retryAfterMs). */
  HOST_BUSY: "TELEPORT_ERR_HOST_BUSY",
  /** The host's identity files (key, certificate, secrets) are damaged. */
  IDENTITY: "TELEPORT_ERR_IDENTITY",
  /** TELEPORT_HOME/config.json cannot be read, is not JSON, or holds a key or value teleport does not take. */
  CONFIG: "TELEPORT_ERR_CONFIG",
  INTERNAL: "TELEPORT_ERR_INTERNAL",
  /** An upload over a read link, or to a host that takes none (`host --allow-upload`). */
  READ_ONLY: "TELEPORT_ERR_READ_ONLY",
  /** An upload larger than the host's `--max-upload-bytes`. */
  QUOTA: "TELEPORT_ERR_QUOTA",
  /** `pull --include/--exclude` against a host that cannot apply them (no Feature.FILTERS). */
  FILTERS_UNSUPPORTED: "TELEPORT_ERR_FILTERS_UNSUPPORTED",
  /** `pull --watch` of a host that does not offer live sync (an older teleport, or no watcher there). */
  WATCH_UNSUPPORTED: "TELEPORT_ERR_WATCH_UNSUPPORTED",
  /** A relay refused a registration, a connection or a request (its reason is in the message). */
  RELAY_REFUSED: "TELEPORT_ERR_RELAY_REFUSED",
  /**
   * An encrypted connection's bytes were altered, replayed or reordered on the way (its TLS
   * records failed their check): nothing read from it after that was used.
   */
  TAMPERED: "TELEPORT_ERR_TAMPERED",
  /** `receive CODE`: the code's confirmation failed (a wrong word or number); the offer is now closed. */
  CODE_WRONG: "TELEPORT_ERR_CODE_WRONG",
  /** `receive CODE`: the code was already used (claimed by a receiver); a code works once. */
  CODE_USED: "TELEPORT_ERR_CODE_USED",
  /** `send`'s offer ran out (--expire) before a receiver completed. */
  CODE_EXPIRED: "TELEPORT_ERR_CODE_EXPIRED",
  /** `receive CODE`: no sender under the code's number answered, on the LAN or at the relay. */
  CODE_NOT_FOUND: "TELEPORT_ERR_CODE_NOT_FOUND",
  /** `mount`: this machine cannot mount (no /dev/fuse, or teleport's FUSE addon or libfuse3 missing). */
  FUSE_UNAVAILABLE: "TELEPORT_ERR_FUSE_UNAVAILABLE",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));

const HINTS: Partial<Record<ErrorCode, string>> = {
  [ErrorCode.BAD_LINK]: "copy the whole share link printed by `teleport host`",
  [ErrorCode.AUTH]: "the link's secret was not accepted: ask the host for a fresh link",
  [ErrorCode.VERSION]:
    "the two teleports speak different protocol versions: run the same release on both machines",
  [ErrorCode.FINGERPRINT]:
    "the host's certificate does not match the link: you may be talking to another machine",
  [ErrorCode.CONNECTION]: "check that `teleport host` is running and reachable at the link's address",
  [ErrorCode.TIMEOUT]: "the peer stopped responding; check the network and retry",
  [ErrorCode.NO_SPACE]: "free some space at the destination and run the same command again",
  [ErrorCode.PARTIAL]: "the files listed above were not pulled; everything else was, and is complete",
  [ErrorCode.UNAVAILABLE]: "use `--transport tcp` (or auto, which falls back to it)",
  [ErrorCode.ENCRYPTION_REQUIRED]:
    "pull without --no-encryption, or ask the host's owner to start it with --allow-no-encryption",
  [ErrorCode.CHUNK_CORRUPT]: "data did not match its BLAKE3 hash and was discarded; retry the pull",
  [ErrorCode.HOST_BUSY]: "the host is serving as many clients as it takes; the pull retries when it says",
  [ErrorCode.CANCELLED]: "run the same command again to resume: finished files and chunks are kept",
  [ErrorCode.NOT_FOUND]: "`teleport ls LINK [folder]` lists what the share holds",
  [ErrorCode.READ_ONLY]:
    "push needs the host's write link: the second line `teleport host DIR --allow-upload` prints",
  [ErrorCode.QUOTA]: "the host takes uploads up to its --max-upload-bytes: push less, or ask its owner",
  [ErrorCode.FILTERS_UNSUPPORTED]:
    "the host runs a teleport without --include/--exclude: upgrade it, or pull without them",
  [ErrorCode.WATCH_UNSUPPORTED]: "run the same teleport release on the host, or pull without --watch",
  [ErrorCode.CODE_WRONG]:
    "the code did not match, and the offer is closed (one guess per code): ask the sender to run `teleport send` again",
  [ErrorCode.CODE_USED]: "a code works once: ask the sender to run `teleport send` again for a new one",
  [ErrorCode.CODE_EXPIRED]:
    "the offer ran out: ask the sender to run `teleport send` again (--expire sets how long it waits)",
  [ErrorCode.CODE_NOT_FOUND]:
    "check the code; on another network than the sender's, both need the same relay (--relay HOST:PORT)",
  [ErrorCode.FUSE_UNAVAILABLE]:
    "install libfuse3 (apt-get install fuse3 libfuse3-dev) and load the fuse module (modprobe fuse); in a container pass --device /dev/fuse",
  [ErrorCode.PATH_ESCAPE]: "only what is inside the shared folder is served: `teleport ls LINK` lists it",
};

/**
 * The AUTH hint when the host answered after a delay: it slows its refusals to an address that
 * sent wrong secrets (host/auth-limiter.ts). Retrying at once only meets more delay; the right
 * link is let in at any time.
 */
export function authDelayedHint(windowMs: number): string {
  const seconds = Math.ceil(windowMs / 1000);
  return (
    `the host is slowing its answers to this address after several wrong secrets: wait ${seconds} s ` +
    "before trying again, with the whole link as `teleport host` printed it (the right link is let in at once)"
  );
}

export class TeleportError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  /** HOST_BUSY: when the host asked to be tried again (ms). */
  readonly retryAfterMs: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; hint?: string | undefined; retryAfterMs?: number | undefined },
  ) {
    super(`${code}: ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TeleportError";
    this.code = code;
    this.hint = options?.hint ?? HINTS[code];
    this.retryAfterMs = options?.retryAfterMs;
  }

  /** The message without the code prefix, as sent over the wire. */
  get detail(): string {
    return this.message.slice(this.code.length + 2);
  }
}

export function isErrorCode(code: string): code is ErrorCode {
  return KNOWN_CODES.has(code);
}

export function isTeleportError(err: unknown, code?: ErrorCode): err is TeleportError {
  return err instanceof TeleportError && (code === undefined || err.code === code);
}

/**
 * Maps a Node system error (ENOENT, ENOSPC, ...) to a TeleportError; passes TeleportErrors
 * through. The message names the path: `context` when given (what was being done, with its
 * path), else the path the system call was made on; file-system errors get a hint naming it.
 */
export function toTeleportError(err: unknown, context?: string): TeleportError {
  if (err instanceof TeleportError) return err;
  const sys = err as NodeJS.ErrnoException | undefined;
  const path = typeof sys?.path === "string" ? sys.path : undefined;
  const named = context ?? path;
  const where = named === undefined ? "" : `${named}: `;
  const options = (hint?: string) => ({ cause: err, hint });
  // An AbortSignal's own reason (a DOMException, code 20): the caller cancelled, nothing failed.
  if (sys?.name === "AbortError")
    return new TeleportError(ErrorCode.CANCELLED, `${where}operation cancelled`, { cause: err });
  switch (sys?.code) {
    case "ENOSPC":
    case "EDQUOT":
      return new TeleportError(ErrorCode.NO_SPACE, `${where}no space left on device`, options());
    case "EACCES":
    case "EPERM":
      return new TeleportError(
        ErrorCode.PERMISSION,
        `${where}permission denied`,
        options(permissionHint(path)),
      );
    case "EROFS":
      return new TeleportError(
        ErrorCode.PERMISSION,
        `${where}read-only file system`,
        options("choose a place on a file system mounted read-write"),
      );
    case "ENOENT":
      return new TeleportError(
        ErrorCode.NOT_FOUND,
        `${where}no such file or directory`,
        options(path === undefined ? undefined : `check the path: ${path} is not there`),
      );
    case "ECONNREFUSED":
    case "ECONNRESET":
    case "EPIPE":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "ENOTFOUND":
      return new TeleportError(ErrorCode.CONNECTION, `${where}${sys.message}`, options());
    case "ETIMEDOUT":
      return new TeleportError(ErrorCode.TIMEOUT, `${where}${sys.message}`, options());
    // OpenSSL's verdict on a TLS record that does not authenticate: someone on the path changed it.
    case "ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC":
    case "ERR_SSL_BAD_RECORD_MAC":
    case "ERR_SSL_RECORD_LAYER_FAILURE":
      return tamperedError(where, err);
    case "ABORT_ERR":
      return new TeleportError(ErrorCode.CANCELLED, `${where}operation cancelled`, options());
    default:
      if (sys?.code !== undefined && typeof sys.message === "string") {
        // Node's own message names the system call and its path ("ENOTDIR: ..., mkdir '/a/b'").
        const message = `${context === undefined ? "" : `${context}: `}${sys.message}`;
        return new TeleportError(ErrorCode.IO, message, options(ioHint(sys.code, path)));
      }
      return new TeleportError(ErrorCode.INTERNAL, `${where}${String((err as Error)?.message ?? err)}`, {
        cause: err,
      });
  }
}

/**
 * Maps an error on an established connection. Once the TLS handshake is done, any failure of
 * OpenSSL's record layer (a record that fails its check, but also a record header that no longer
 * parses, as when spliced bytes are reordered or dropped) means the bytes were changed on the way.
 */
export function toConnectionError(err: unknown): TeleportError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === "string" && code.startsWith("ERR_SSL_")) return tamperedError("connection: ", err);
  return toTeleportError(err, "connection");
}

function tamperedError(where: string, cause: unknown): TeleportError {
  return new TeleportError(
    ErrorCode.TAMPERED,
    `${where}the connection's bytes were altered on the way (a TLS record failed its check)`,
    {
      cause,
      hint: "something between the two ends (a relay, a proxy) changes the traffic; another attempt may take another path",
    },
  );
}

/** What to do about a file-system error other than those with codes of their own. */
function ioHint(code: string, path: string | undefined): string | undefined {
  const named = path ?? "the path named above";
  switch (code) {
    case "ENOTDIR":
      return `a name on the way to ${named} is a file, not a folder: choose another path or move it`;
    case "EISDIR":
      return `${named} is a folder where a file is needed: choose another path or move it`;
    case "EEXIST":
    case "ENOTEMPTY":
      return `something is in the way at ${named}: move it, or choose another path`;
    case "EMFILE":
    case "ENFILE":
      return "too many files open: raise the limit (ulimit -n) and run the same command again";
    case "ENAMETOOLONG":
      return `${named} is longer than this file system allows: choose a shorter path`;
    default:
      return undefined;
  }
}

/** What to do about a path this process may not use. */
function permissionHint(path: string | undefined): string {
  const which = path === undefined ? "the path named above" : path;
  return `this user may not use ${which}: check its owner and mode and those of the folders above it (ls -ld), or choose another place`;
}
