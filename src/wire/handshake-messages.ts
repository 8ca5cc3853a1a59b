/**
 * The bodies that open and refuse a connection: HELLO (the client's versions, features and proof
 * of the link's secret), WELCOME (what the host agreed to) and ERROR. Kept apart from
 * messages.ts, whose catalogue registers them.
 */
import { type Codec, fixedBytes, struct, trailing, uint8, uint16, uint32, utf8 } from "./codec.js";
import { MAX_NAME_BYTES } from "./limits.js";

export interface Hello {
  magic: number;
  minVersion: number;
  maxVersion: number;
  features: number;
  /** HMAC-SHA256(secret, TLS exporter): proves the client holds the link's secret, bound to this TLS session. */
  authProof: Buffer;
  clientName: string;
  /**
   * Random, the same on every connection of one client (its control connection and its streams):
   * the host shares its time between clients, not connections. Absent from clients before it.
   */
  clientId?: Buffer | undefined;
  /** A plaintext stream with Feature.FRAME_MAC: the id of its control connection's stream key. */
  streamKeyId?: Buffer | undefined;
}
export const CLIENT_ID_SIZE = 16;
export const STREAM_KEY_ID_SIZE = 8;
export const helloCodec: Codec<Hello> = struct<Hello>({
  magic: uint32,
  minVersion: uint16,
  maxVersion: uint16,
  features: uint32,
  authProof: fixedBytes(32),
  clientName: utf8(256),
  clientId: trailing(fixedBytes(CLIENT_ID_SIZE)),
  streamKeyId: trailing(fixedBytes(STREAM_KEY_ID_SIZE)),
});

export interface Welcome {
  version: number;
  features: number;
  shareName: string;
  maxChunkSize: number;
  /**
   * 1: the share is one file (`host FILE`), the only name in a root folder that stands for the
   * file's own folder: a pull of the whole share gives DEST neither that folder's mode and mtime
   * nor, with --delete, its other names to remove. Absent from hosts before it.
   */
  oneFile?: number | undefined;
}
export const welcomeCodec: Codec<Welcome> = struct<Welcome>({
  version: uint16,
  features: uint32,
  shareName: utf8(MAX_NAME_BYTES * 4),
  maxChunkSize: uint32,
  oneFile: trailing(uint8),
});

export interface ErrorMessage {
  code: string;
  message: string;
  /**
   * An AUTH refusal the host delayed (host/auth-limiter.ts): how long this address must send no
   * wrong secret before its refusals are quick again. Absent from hosts before it.
   */
  authDelayWindowMs?: number | undefined;
  /**
   * A HOST_BUSY refusal (to a client with Feature.HOST_BUSY): when to try again (ms). It follows
   * authDelayWindowMs, which is then 0 (no delayed refusal).
   */
  retryAfterMs?: number | undefined;
}
export const errorCodec: Codec<ErrorMessage> = struct<ErrorMessage>({
  code: utf8(64),
  message: utf8(2048),
  authDelayWindowMs: trailing(uint32),
  retryAfterMs: trailing(uint32),
});
