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
  /** The host's identity files (key, certificate, secrets) are damaged. */
  IDENTITY: "TELEPORT_ERR_IDENTITY",
  /** TELEPORT_HOME/config.json cannot be read, is not JSON, or holds a key or value teleport does not take. */
  CONFIG: "TELEPORT_ERR_CONFIG",
  INTERNAL: "TELEPORT_ERR_INTERNAL",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));

const HINTS: Partial<Record<ErrorCode, string>> = {
  [ErrorCode.BAD_LINK]: "copy the whole share link printed by `teleport host`",
  [ErrorCode.AUTH]: "the link's secret was not accepted: ask the host for a fresh link",
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
};

export class TeleportError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; hint?: string }) {
    super(`${code}: ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TeleportError";
    this.code = code;
    this.hint = options?.hint ?? HINTS[code];
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

/** Maps a Node system error (ENOENT, ENOSPC, ...) to a TeleportError; passes TeleportErrors through. */
export function toTeleportError(err: unknown, context?: string): TeleportError {
  if (err instanceof TeleportError) return err;
  const sys = err as NodeJS.ErrnoException | undefined;
  const where = context === undefined ? "" : `${context}: `;
  switch (sys?.code) {
    case "ENOSPC":
    case "EDQUOT":
      return new TeleportError(ErrorCode.NO_SPACE, `${where}no space left on device`, { cause: err });
    case "EACCES":
    case "EPERM":
      return new TeleportError(ErrorCode.PERMISSION, `${where}permission denied`, { cause: err });
    case "ENOENT":
      return new TeleportError(ErrorCode.NOT_FOUND, `${where}no such file or directory`, { cause: err });
    case "ECONNREFUSED":
    case "ECONNRESET":
    case "EPIPE":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "ENOTFOUND":
      return new TeleportError(ErrorCode.CONNECTION, `${where}${sys.message}`, { cause: err });
    case "ETIMEDOUT":
      return new TeleportError(ErrorCode.TIMEOUT, `${where}${sys.message}`, { cause: err });
    case "ABORT_ERR":
      return new TeleportError(ErrorCode.CANCELLED, `${where}operation cancelled`, { cause: err });
    default:
      if (sys?.code !== undefined && typeof sys.message === "string") {
        return new TeleportError(ErrorCode.IO, `${where}${sys.message}`, { cause: err });
      }
      return new TeleportError(ErrorCode.INTERNAL, `${where}${String((err as Error)?.message ?? err)}`, {
        cause: err,
      });
  }
}
