/**
 * The teleport wire protocol, version 1. Message bodies are encoded with the codecs in codec.ts.
 * Evolution is additive: new message types get new numbers, new fields go at the end of a body
 * (decoders ignore trailing bytes), and features are negotiated as bits in the handshake.
 */
import {
  array,
  bytes,
  type Codec,
  fixedBytes,
  float64,
  rest,
  struct,
  trailing,
  uint8,
  uint32,
  uint64,
  utf8,
} from "./codec.js";
import { deltaDataCodec, deltaRequestCodec } from "./delta-messages.js";
import { type FilterRule, filterRuleCodec } from "./filter-rules.js";
import { errorCodec, helloCodec, welcomeCodec } from "./handshake-messages.js";
import {
  HASH_SIZE,
  MAX_CHUNK_SIZE,
  MAX_FILTER_RULES,
  MAX_FRAME_BODY,
  MAX_NAME_BYTES,
  MAX_PATH_BYTES,
  MAX_PATTERN_BYTES,
} from "./limits.js";
import { punchReadyCodec, punchRequestCodec } from "./punch-messages.js";
import { MessageRegistry } from "./registry.js";
import {
  uploadRequestCodec,
  uploadResultCodec,
  uploadStreamCodec,
  uploadStreamWantedCodec,
} from "./upload-messages.js";
import { changesCodec, watchRequestCodec } from "./watch-messages.js";

export { FilterKind, type FilterRule, filterRuleCodec } from "./filter-rules.js";
export {
  CLIENT_ID_SIZE,
  type ErrorMessage,
  errorCodec,
  type Hello,
  helloCodec,
  STREAM_KEY_ID_SIZE,
  type Welcome,
  welcomeCodec,
} from "./handshake-messages.js";
export {
  UPLOAD_STREAM_TOKEN_SIZE,
  UploadFlag,
  type UploadRequest,
  type UploadResult,
  type UploadStream,
  uploadRequestCodec,
  uploadResultCodec,
  uploadStreamCodec,
  uploadStreamWantedCodec,
} from "./upload-messages.js";
export {
  HASH_SIZE,
  MAX_CHUNK_SIZE,
  MAX_FILTER_RULES,
  MAX_FRAME_BODY,
  MAX_NAME_BYTES,
  MAX_PATH_BYTES,
  MAX_PATTERN_BYTES,
};

export const PROTOCOL_MAGIC = 0x54504c54; // "TLPT"
export const PROTOCOL_VERSION = 1;
export const MIN_PROTOCOL_VERSION = 1;

export const MAX_ENTRIES_PER_FRAME = 1024;
export const MAX_CHUNKS_PER_FRAME = 4096;
export const MAX_CHUNKS_PER_REQUEST = 1024;

export const MessageType = {
  // Connection control (requestId 0 unless stated).
  HELLO: 1,
  WELCOME: 2,
  ERROR: 3, // requestId of the failed request, or 0 for the connection
  PING: 4,
  PONG: 5,
  CANCEL: 6, // requestId of the request to cancel
  CREDIT: 7, // requestId of the response stream that may send more bytes
  END: 8, // requestId of the response stream that is complete

  // Requests, client -> host. The requestId is chosen by the client and unique while open.
  LIST: 16,
  STAT: 17,
  MANIFEST: 18,
  GET_CHUNKS: 19,
  READ_RANGE: 20,
  /** Changed chunks wanted as deltas against old bytes the client signs (Feature.DELTA). */
  DELTA: 21,

  // Response frames, host -> client, carrying the requestId of their request.
  ENTRIES: 32,
  FILE_BEGIN: 33,
  CHUNKS: 34,
  FILE_END: 35,
  CHUNK_DATA: 36,
  RANGE_DATA: 37,
  /** In a manifest, in place of an entry the host could not read (with Feature.ENTRY_ERRORS). */
  ENTRY_ERROR: 38,
  /**
   * A chunk sent zstd-compressed (with Feature.COMPRESSION, when GET_CHUNKS asked for it): its
   * hash, then one zstd frame of its bytes. The hash is of the uncompressed bytes, as everywhere.
   */
  CHUNK_ZSTD: 39,
  /** In a manifest, for an entry the host does not serve, and why (with Feature.SKIPPED_ENTRIES). */
  ENTRY_SKIPPED: 40,
  /** Answers to a DELTA request: scripts and their literal bytes (Feature.DELTA). */
  DELTA_DATA: 41,

  // Uploads (Feature.UPLOAD): the pusher asks, the host agrees, then the two swap roles on the
  // connection (push/, docs/decisions.md, "Push"): the host pulls from the pusher.
  /**
   * Pusher -> host: an upload into a folder of the share, and how much it holds. END answers it
   * taken (the pusher then sends UPLOAD_SWITCH and nothing more in its first role), ERROR refused.
   */
  UPLOAD: 0x60,
  /** Pusher -> host, its last frame as the client: from the next frame on, the host is the client. */
  UPLOAD_SWITCH: 0x62,
  /** Host (now the client) -> pusher: how the upload ended, the pull's summary as JSON. */
  UPLOAD_RESULT: 0x63,
  /** Host (now the client) -> pusher: dial a data stream for my pull, naming this one-time token. */
  UPLOAD_STREAM_WANTED: 0x64,
  /**
   * Pusher -> host, first request on a connection it dialed: the stream the token asked for.
   * END takes it, and the two swap roles on it as on the control connection (UPLOAD_SWITCH).
   */
  UPLOAD_STREAM: 0x65,
  // Live sync (Feature.WATCH): a subscription, answered by a stream of CHANGES until cancelled.
  WATCH: 0x70,
  CHANGES: 0x71,
  PUNCH: 0x80, // Feature.PUNCH, hole punching: wire/punch-messages.ts
  PUNCH_READY: 0x81,
} as const;

/** Bits of HELLO and WELCOME `features`: what the client offers, and what the host agrees to. */
export const Feature = {
  ENTRY_ERRORS: 1,
  /** The host sends CHUNK_ZSTD frames where GET_CHUNKS asks for a compression level. */
  COMPRESSION: 2,
  /**
   * The host takes connections over both TCP and QUIC on the link's port, so a client may move its
   * data streams from one to the other during a pull (client/pool/transport-trial.ts).
   */
  BOTH_TRANSPORTS: 4,
  /** The host sends HARDLINK entries for more names of a file it has already sent. */
  HARD_LINKS: 8,
  /** The client asks for files' `user.` extended attributes (`pull --xattrs`), in FILE_BEGIN. */
  XATTRS: 16,
  /**
   * The client wants its data streams in plaintext (`pull --no-encryption`); the host, answering
   * with it, takes them (`host --allow-no-encryption`). See transport/plain.ts.
   */
  PLAINTEXT: 32,
  /**
   * Requests on plaintext streams are authenticated (transport/frame-mac.ts). Asked for on the
   * control connection, the host answering with it when it takes plaintext streams; then each
   * plaintext stream asks for it too, names its control connection by Hello.streamKeyId, and
   * every frame it sends, HELLO included, carries a MAC; the host serves on it only chunks of
   * files it listed to that client.
   */
  FRAME_MAC: 64,
  /** The host sends ENTRY_SKIPPED for what it leaves out of a manifest (`pull` reports them). */
  SKIPPED_ENTRIES: 128,
  /**
   * The client retries a HOST_BUSY refusal of a request after the ERROR's retryAfterMs; a host
   * serving as many clients as it takes refuses such clients' first path request, and takes
   * the others anyway.
   */
  HOST_BUSY: 256,
  /**
   * The host answers DELTA requests: a changed chunk comes as copies of blocks of the client's
   * old copy and literal bytes (src/delta, serve/delta-sender.ts, client/pull/delta-fetcher.ts).
   */
  DELTA: 512,
  /**
   * The client asks to upload (`teleport push`); the host, answering with it, takes uploads
   * from write links (`host --allow-upload`). See push/.
   */
  UPLOAD: 1024,
  /**
   * The host applies MANIFEST's `--include`/`--exclude` rules while it walks (src/filter): an
   * excluded folder is not descended. A client with rules sends them only to such a host.
   */
  FILTERS: 4096,
  /**
   * The host answers WATCH with CHANGES as files change beneath the watched path (`pull
   * --watch`; host/share-watch.ts, client/watch.ts).
   */
  WATCH: 2048,
  PUNCH: 8192, // the host answers PUNCH: a direct QUIC path punched through NATs (reach/)
  /**
   * A pusher sends each TCP data stream's token as a route ahead of its TLS handshake
   * (transport/preamble.ts), and the host, answering with it, hands such a stream to the thread
   * of its pull that wants it before any TLS (push/offered-streams.ts).
   */
  ROUTED_STREAMS: 16384,
} as const;

export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export const EntryKind = {
  FILE: 1,
  DIRECTORY: 2,
  SYMLINK: 3,
  /**
   * Another name of a file already sent in this manifest (with Feature.HARD_LINKS): `linkTarget`
   * is that file's path, and the client links the two.
   */
  HARDLINK: 4,
} as const;
export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];

const path = utf8(MAX_PATH_BYTES);
const hash = fixedBytes(HASH_SIZE);

/** A file or folder of a manifest that could not be read, and why; the rest goes on. */
export interface EntryError {
  path: string;
  code: string;
  message: string;
}
export const entryErrorCodec: Codec<EntryError> = struct<EntryError>({
  path: utf8(MAX_PATH_BYTES),
  code: utf8(64),
  message: utf8(2048),
});

/**
 * Why a host leaves an entry out: it serves files, folders and symlinks that stay inside the
 * share, nothing else. Clients show reasons they do not know as they come.
 */
export const SkipReason = {
  /** A symlink whose target leaves the share (or, dangling, would). */
  SYMLINK_OUTSIDE: "symlink-outside",
  FIFO: "fifo",
  SOCKET: "socket",
  DEVICE: "device",
} as const;
export type SkipReason = (typeof SkipReason)[keyof typeof SkipReason];

/** An entry of a manifest the host does not serve (SkipReason); the rest is complete without it. */
export interface EntrySkipped {
  path: string;
  reason: string;
}
export const entrySkippedCodec: Codec<EntrySkipped> = struct<EntrySkipped>({
  path: utf8(MAX_PATH_BYTES),
  reason: utf8(64),
});

export type Credit = { bytes: number };
export const creditCodec: Codec<Credit> = struct<Credit>({ bytes: uint32 });

export interface Ping {
  sentAt: number;
}
export const pingCodec: Codec<Ping> = struct<Ping>({ sentAt: float64 });

export type Empty = Record<string, never>;
export const emptyCodec: Codec<Empty> = struct<Empty>({});

/** A file, folder or symlink, with its path relative to the share root ("" is the root). */
export interface Entry {
  kind: EntryKind;
  path: string;
  size: number;
  mode: number;
  mtimeMs: number;
  /** For symlinks: a relative target that stays inside the share; "" otherwise. */
  linkTarget: string;
}
const entryFields = {
  kind: uint8 as Codec<EntryKind>,
  path,
  size: uint64,
  mode: uint32,
  mtimeMs: float64,
  linkTarget: path,
};
export const entryCodec: Codec<Entry> = struct<Entry>(entryFields);

/** An extended attribute of a file. */
export interface Xattr {
  name: string;
  value: Buffer;
}
/** Attributes per file, and their bytes in all, that a host sends at most (the rest are left). */
export const MAX_XATTRS = 64;
export const MAX_XATTR_BYTES = 256 * 1024;
const MAX_XATTR_NAME_BYTES = 255;
const MAX_XATTR_VALUE_BYTES = 64 * 1024;

/** FILE_BEGIN: the file's entry, and with Feature.XATTRS its extended attributes. */
export interface FileBegin extends Entry {
  xattrs?: Xattr[] | undefined;
}
export const fileBeginCodec: Codec<FileBegin> = struct<FileBegin>({
  ...entryFields,
  xattrs: trailing(
    array(
      struct<Xattr>({ name: utf8(MAX_XATTR_NAME_BYTES), value: bytes(MAX_XATTR_VALUE_BYTES) }),
      MAX_XATTRS,
    ),
  ),
});

export interface ListRequest {
  credit: number;
  path: string;
  recursive: number;
}
export const listRequestCodec: Codec<ListRequest> = struct<ListRequest>({
  credit: uint32,
  path,
  recursive: uint8,
});

export interface StatRequest {
  path: string;
}
export const statRequestCodec: Codec<StatRequest> = struct<StatRequest>({ path });

export interface ManifestRequest {
  credit: number;
  path: string;
  /** The pull's `--include`/`--exclude` rules (Feature.FILTERS); absent: none. */
  filters?: FilterRule[] | undefined;
}
export const manifestRequestCodec: Codec<ManifestRequest> = struct<ManifestRequest>({
  credit: uint32,
  path,
  filters: trailing(array(filterRuleCodec, MAX_FILTER_RULES)),
});

/** A chunk wanted by hash; path and offset tell the host where it last saw those bytes. */
export interface ChunkRequest {
  hash: Buffer;
  size: number;
  path: string;
  offset: number;
}
export const chunkRequestCodec: Codec<ChunkRequest> = struct<ChunkRequest>({
  hash,
  size: uint32,
  path,
  offset: uint64,
});

export interface GetChunksRequest {
  chunks: ChunkRequest[];
  /**
   * zstd level for the chunks worth compressing (Feature.COMPRESSION); absent or 0: none;
   * COMPRESS_ADAPTIVE or COMPRESS_ADAPTIVE_ALWAYS: the host's choice (see AdaptiveLevel).
   */
  compressLevel?: number | undefined;
}
/** The host adapts the level to how busy its compressor is, down to none at all. */
export const COMPRESS_ADAPTIVE = 0xff;
/** The same, never below level 1 (`--compress on`). */
export const COMPRESS_ADAPTIVE_ALWAYS = 0xfe;
export const getChunksRequestCodec: Codec<GetChunksRequest> = struct<GetChunksRequest>({
  chunks: array(chunkRequestCodec, MAX_CHUNKS_PER_REQUEST),
  compressLevel: trailing(uint8),
});

export interface ReadRangeRequest {
  credit: number;
  path: string;
  offset: number;
  length: number;
}
export const readRangeRequestCodec: Codec<ReadRangeRequest> = struct<ReadRangeRequest>({
  credit: uint32,
  path,
  offset: uint64,
  length: uint64,
});

export interface Entries {
  entries: Entry[];
}
export const entriesCodec: Codec<Entries> = struct<Entries>({
  entries: array(entryCodec, MAX_ENTRIES_PER_FRAME),
});

export interface ChunkRef {
  offset: number;
  size: number;
  hash: Buffer;
}
export const chunkRefCodec: Codec<ChunkRef> = struct<ChunkRef>({ offset: uint64, size: uint32, hash });

export interface Chunks {
  chunks: ChunkRef[];
}
export const chunksCodec: Codec<Chunks> = struct<Chunks>({
  chunks: array(chunkRefCodec, MAX_CHUNKS_PER_FRAME),
});

export interface FileEnd {
  size: number;
  chunkCount: number;
  /** BLAKE3 over the file's chunk hashes, in order (see chunking/manifest.ts). */
  fileHash: Buffer;
}
export const fileEndCodec: Codec<FileEnd> = struct<FileEnd>({
  size: uint64,
  chunkCount: uint32,
  fileHash: hash,
});

/**
 * A CHUNK_DATA frame is the chunk's 32-byte hash followed by its bytes, to the end of the frame
 * (CHUNK_ZSTD: by one zstd frame of them). Senders write the header in place and receivers read
 * the bytes after it; the codec says the same for tests and tools.
 */
export const CHUNK_DATA_HEADER_SIZE = HASH_SIZE;
export interface ChunkData {
  hash: Buffer;
  data: Buffer;
}
export const chunkDataCodec: Codec<ChunkData> = struct<ChunkData>({ hash, data: rest });

/** Header of a RANGE_DATA frame: a piece of the range, its offset in the file and its hash. */
export interface RangeDataHeader {
  offset: number;
  hash: Buffer;
}
export const rangeDataHeaderCodec: Codec<RangeDataHeader> = struct<RangeDataHeader>({ offset: uint64, hash });
export const RANGE_DATA_HEADER_SIZE = 8 + HASH_SIZE;

/** A RANGE_DATA frame: its header, then the piece's bytes to the end of the frame. */
export interface RangeData extends RangeDataHeader {
  data: Buffer;
}
export const rangeDataCodec: Codec<RangeData> = struct<RangeData>({ offset: uint64, hash, data: rest });

/**
 * Every message of the protocol, described once: its codec, who sends it, whether its body may
 * be bulk data (assembled into a pooled buffer) and whether a plaintext stream may carry it.
 * Each side registers its handlers against these (see registry.ts).
 */
export const protocol = new MessageRegistry(MessageType);
export const Messages = {
  HELLO: protocol.define(MessageType.HELLO, helloCodec, { from: "client", plaintext: true }),
  WELCOME: protocol.define(MessageType.WELCOME, welcomeCodec, { from: "host", plaintext: true }),
  ERROR: protocol.define(MessageType.ERROR, errorCodec, { from: "either", plaintext: true }),
  PING: protocol.define(MessageType.PING, pingCodec, { from: "client", plaintext: true }),
  PONG: protocol.define(MessageType.PONG, pingCodec, { from: "host", plaintext: true }),
  CANCEL: protocol.define(MessageType.CANCEL, emptyCodec, { from: "client", plaintext: true }),
  CREDIT: protocol.define(MessageType.CREDIT, creditCodec, { from: "client", plaintext: true }),
  END: protocol.define(MessageType.END, emptyCodec, { from: "host", plaintext: true }),

  LIST: protocol.define(MessageType.LIST, listRequestCodec, { from: "client" }),
  STAT: protocol.define(MessageType.STAT, statRequestCodec, { from: "client" }),
  MANIFEST: protocol.define(MessageType.MANIFEST, manifestRequestCodec, { from: "client" }),
  GET_CHUNKS: protocol.define(MessageType.GET_CHUNKS, getChunksRequestCodec, {
    from: "client",
    plaintext: true,
  }),
  READ_RANGE: protocol.define(MessageType.READ_RANGE, readRangeRequestCodec, { from: "client" }),
  DELTA: protocol.define(MessageType.DELTA, deltaRequestCodec, { from: "client" }),

  ENTRIES: protocol.define(MessageType.ENTRIES, entriesCodec, { from: "host" }),
  FILE_BEGIN: protocol.define(MessageType.FILE_BEGIN, fileBeginCodec, { from: "host" }),
  /** Up to MAX_CHUNKS_PER_FRAME references: ~180 KB. */
  CHUNKS: protocol.define(MessageType.CHUNKS, chunksCodec, { from: "host", bulk: true }),
  FILE_END: protocol.define(MessageType.FILE_END, fileEndCodec, { from: "host" }),
  ENTRY_ERROR: protocol.define(MessageType.ENTRY_ERROR, entryErrorCodec, { from: "host" }),
  ENTRY_SKIPPED: protocol.define(MessageType.ENTRY_SKIPPED, entrySkippedCodec, { from: "host" }),
  CHUNK_DATA: protocol.define(MessageType.CHUNK_DATA, chunkDataCodec, {
    from: "host",
    bulk: true,
    plaintext: true,
  }),
  CHUNK_ZSTD: protocol.define(MessageType.CHUNK_ZSTD, chunkDataCodec, {
    from: "host",
    bulk: true,
    plaintext: true,
  }),
  RANGE_DATA: protocol.define(MessageType.RANGE_DATA, rangeDataCodec, { from: "host", bulk: true }),
  DELTA_DATA: protocol.define(MessageType.DELTA_DATA, deltaDataCodec, { from: "host", bulk: true }),

  UPLOAD: protocol.define(MessageType.UPLOAD, uploadRequestCodec, { from: "client" }),
  UPLOAD_SWITCH: protocol.define(MessageType.UPLOAD_SWITCH, emptyCodec, { from: "client" }),
  UPLOAD_RESULT: protocol.define(MessageType.UPLOAD_RESULT, uploadResultCodec, { from: "client" }),
  UPLOAD_STREAM_WANTED: protocol.define(MessageType.UPLOAD_STREAM_WANTED, uploadStreamWantedCodec, {
    from: "client",
  }),
  UPLOAD_STREAM: protocol.define(MessageType.UPLOAD_STREAM, uploadStreamCodec, { from: "client" }),
  WATCH: protocol.define(MessageType.WATCH, watchRequestCodec, { from: "client" }),
  CHANGES: protocol.define(MessageType.CHANGES, changesCodec, { from: "host" }),
  PUNCH: protocol.define(MessageType.PUNCH, punchRequestCodec, { from: "client" }),
  PUNCH_READY: protocol.define(MessageType.PUNCH_READY, punchReadyCodec, { from: "host" }),
} as const;
