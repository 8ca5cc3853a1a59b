/**
 * A hostile host for testing the client's defences: a real TLS listener with a real identity
 * (so the client connects and authenticates as usual) that answers every MANIFEST request with
 * a scripted list of frames, valid or not, and serves chunk requests from a fixed byte source.
 * A script may pause between frames (a local user's move while the host waits), offer features
 * (Feature.HARD_LINKS), and leave chunk requests unanswered.
 */
import { randomBytes } from "node:crypto";
import type { Duplex } from "node:stream";
import { hashBytes } from "../../src/chunking/hash.js";
import { ChunkListHash } from "../../src/chunking/manifest.js";
import { Connection, encodeFrame } from "../../src/engine/connection.js";
import { loadOrCreateIdentity } from "../../src/transport/identity.js";
import { formatLink } from "../../src/transport/link.js";
import { tcpTransport } from "../../src/transport/tcp.js";
import { type Codec, decodeMessage } from "../../src/wire/codec.js";
import { FRAME_HEADER_SIZE, writeFrameHeader } from "../../src/wire/frame.js";
import {
  CHUNK_DATA_HEADER_SIZE,
  type ChunkRef,
  chunksCodec,
  type Entry,
  EntryKind,
  emptyCodec,
  entriesCodec,
  entryCodec,
  fileEndCodec,
  getChunksRequestCodec,
  MAX_CHUNK_SIZE,
  MessageType,
  manifestRequestCodec,
  welcomeCodec,
} from "../../src/wire/messages.js";
import { changesCodec } from "../../src/wire/watch-messages.js";

export function frameOf<T>(type: number, codec: Codec<T>, value: T): (requestId: number) => Buffer {
  return (requestId) => encodeFrame(type, requestId, codec, value);
}

export const hostile = {
  entries: (entries: Entry[]) => frameOf(MessageType.ENTRIES, entriesCodec, { entries }),
  fileBegin: (entry: Entry) => frameOf(MessageType.FILE_BEGIN, entryCodec, entry),
  chunks: (chunks: ChunkRef[]) => frameOf(MessageType.CHUNKS, chunksCodec, { chunks }),
  fileEnd: (size: number, chunkCount: number, fileHash: Buffer = Buffer.alloc(32)) =>
    frameOf(MessageType.FILE_END, fileEndCodec, { size, chunkCount, fileHash }),
  changes: (sequence: number, changed: string[], removed: string[]) =>
    frameOf(MessageType.CHANGES, changesCodec, { sequence, flags: 0, changed, removed }),
};

export function dirEntry(path: string): Entry {
  return {
    kind: EntryKind.DIRECTORY,
    path,
    size: 0,
    mode: 0o755,
    mtimeMs: 1_700_000_000_000,
    linkTarget: "",
  };
}

export function fileEntry(path: string, size: number): Entry {
  return { kind: EntryKind.FILE, path, size, mode: 0o644, mtimeMs: 1_700_000_000_000, linkTarget: "" };
}

export function hardLinkEntry(path: string, target: string): Entry {
  return {
    kind: EntryKind.HARDLINK,
    path,
    size: 0,
    mode: 0o644,
    mtimeMs: 1_700_000_000_000,
    linkTarget: target,
  };
}

export function symlinkEntry(path: string, target: string): Entry {
  return {
    kind: EntryKind.SYMLINK,
    path,
    size: 0,
    mode: 0o777,
    mtimeMs: 1_700_000_000_000,
    linkTarget: target,
  };
}

/** The frames a well-behaved host sends for one file whose bytes are `data`. */
export function fileFrames(path: string, data: Buffer, mode = 0o644): ((requestId: number) => Buffer)[] {
  const chunks: ChunkRef[] = [];
  const fileHash = new ChunkListHash();
  for (let offset = 0; offset < data.length; offset += MAX_CHUNK_SIZE) {
    const piece = data.subarray(offset, offset + MAX_CHUNK_SIZE);
    chunks.push({ offset, size: piece.length, hash: hashBytes(piece) });
    fileHash.add(chunks.at(-1)?.hash as Buffer);
  }
  return [
    hostile.fileBegin({ ...fileEntry(path, data.length), mode }),
    ...(chunks.length > 0 ? [hostile.chunks(chunks)] : []),
    hostile.fileEnd(data.length, chunks.length, fileHash.digest()),
  ];
}

/** A frame of a script, or a pause: the frames after it wait until it resolves. */
export type ScriptStep = ((requestId: number) => Buffer) | { pause: () => Promise<void> };

export interface HostileOptions {
  /** Features the WELCOME offers (default none). */
  features?: number;
  /** The protocol version the WELCOME answers in (default 1). */
  version?: number;
  /** false: chunk requests are never answered (a host that announces and sends nothing). */
  serveChunks?: boolean;
  /** What each WATCH gets (CHANGES frames, `hostile.changes`); the subscription then stays open. */
  watch?: ScriptStep[];
  /** What LIST answers (default: an empty share); with it, STAT answers the share's root folder. */
  listing?: Entry[];
}

export interface HostileHost {
  link: string;
  /** GET_CHUNKS requests received so far. */
  readonly chunkRequests: number;
  /** Connections open now (the control connection and data streams). */
  readonly connections: number;
  close(): Promise<void>;
}

/** What a MANIFEST gets: the same script for every one, or one per requested path. */
export type Script = ScriptStep[] | ((path: string) => ScriptStep[]);

/**
 * Starts the hostile host. `script` is what each MANIFEST gets; chunk requests are answered
 * with bytes from `content(path)` at the requested offset (zeros if unknown).
 */
export async function startHostileHost(
  home: string,
  script: Script,
  content: (path: string) => Buffer = () => Buffer.alloc(0),
  options: HostileOptions = {},
): Promise<HostileHost> {
  const identity = await loadOrCreateIdentity(home);
  const connections = new Set<Connection>();
  const seen = { chunkRequests: 0 };
  const listener = await tcpTransport.listen(identity, { host: "127.0.0.1", port: 0 }, (stream) => {
    const connection = serveHostile(stream.stream, script, content, { ...options, seen }, () =>
      connections.delete(connection),
    );
    connections.add(connection);
  });
  const link = formatLink({
    host: "127.0.0.1",
    port: listener.port,
    fingerprint: identity.fingerprint,
    secret: randomBytes(16),
  });
  return {
    link,
    get chunkRequests() {
      return seen.chunkRequests;
    },
    get connections() {
      return connections.size;
    },
    close: async () => {
      for (const connection of connections) connection.destroy();
      await listener.close();
    },
  };
}

/**
 * Answers as the hostile host over `socket`: a hostile pusher does the same on the stream it
 * handed over once the host took its upload (test/e2e/hostile-pusher.test.ts).
 */
export function serveHostile(
  socket: Duplex,
  script: Script,
  content: (path: string) => Buffer,
  options: HostileOptions & { seen: { chunkRequests: number } },
  onClose: () => void = () => {},
): Connection {
  const connection: Connection = new Connection(socket, {
    allocateBody: (_type, _id, length) => Buffer.allocUnsafe(length),
    onFrame: (type, requestId, body) =>
      answer(connection, { type, requestId, body }, script, content, options),
    onClose,
  });
  return connection;
}

/** Sends the script, pausing where it says; a connection closed meanwhile ends it. */
async function sendScript(connection: Connection, requestId: number, script: ScriptStep[]): Promise<void> {
  for (const step of script) {
    if (typeof step === "function") connection.sendFrame(step(requestId));
    else await step.pause();
  }
  connection.send(MessageType.END, requestId, emptyCodec, {});
}

function answer(
  connection: Connection,
  { type, requestId, body }: { type: number; requestId: number; body: Buffer },
  script: Script,
  content: (path: string) => Buffer,
  options: HostileOptions & { seen: { chunkRequests: number } },
): void {
  switch (type) {
    case MessageType.HELLO:
      connection.send(MessageType.WELCOME, 0, welcomeCodec, {
        version: options.version ?? 1,
        features: options.features ?? 0,
        shareName: "hostile",
        maxChunkSize: MAX_CHUNK_SIZE,
      });
      return;
    case MessageType.MANIFEST: {
      const steps =
        typeof script === "function" ? script(decodeMessage(manifestRequestCodec, body).path) : script;
      sendScript(connection, requestId, steps).catch(() => connection.destroy());
      return;
    }
    case MessageType.GET_CHUNKS: {
      options.seen.chunkRequests++;
      if (options.serveChunks === false) return;
      for (const chunk of decodeMessage(getChunksRequestCodec, body).chunks) {
        const frame = Buffer.alloc(FRAME_HEADER_SIZE + CHUNK_DATA_HEADER_SIZE + chunk.size);
        writeFrameHeader(frame, 0, MessageType.CHUNK_DATA, requestId, CHUNK_DATA_HEADER_SIZE + chunk.size);
        chunk.hash.copy(frame, FRAME_HEADER_SIZE);
        content(chunk.path).copy(
          frame,
          FRAME_HEADER_SIZE + CHUNK_DATA_HEADER_SIZE,
          chunk.offset,
          chunk.offset + chunk.size,
        );
        connection.sendFrame(frame);
      }
      connection.send(MessageType.END, requestId, emptyCodec, {});
      return;
    }
    case MessageType.WATCH:
      for (const step of options.watch ?? [])
        if (typeof step === "function") connection.sendFrame(step(requestId));
      return;
    case MessageType.LIST:
      if (options.listing !== undefined)
        connection.send(MessageType.ENTRIES, requestId, entriesCodec, { entries: options.listing });
      connection.send(MessageType.END, requestId, emptyCodec, {}); // else an empty share
      return;
    case MessageType.STAT:
      if (options.listing === undefined) return;
      connection.send(MessageType.ENTRIES, requestId, entriesCodec, { entries: [dirEntry("")] });
      connection.send(MessageType.END, requestId, emptyCodec, {});
      return;
    default:
      return; // PING, CREDIT, CANCEL: nothing to say
  }
}
