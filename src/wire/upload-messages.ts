/**
 * The bodies of UPLOAD and UPLOAD_RESULT (Feature.UPLOAD, src/push): the pusher's request, and
 * the host's answer once it has pulled the upload. Kept apart from messages.ts, whose catalogue
 * registers them.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import { array, type Codec, fixedBytes, struct, trailing, uint8, uint64, utf8 } from "./codec.js";
import { type FilterRule, filterRuleCodec } from "./filter-rules.js";
import { MAX_FILTER_RULES, MAX_PATH_BYTES } from "./limits.js";

const path = utf8(MAX_PATH_BYTES);

/**
 * UPLOAD: the folder of the share it goes into, what the host is to pull from the pusher once
 * they swap roles (a path in the pusher's share; "" its root), and the bytes and files that
 * holds (for the quota and the free-space check). Then, trailing (absent from a plain push):
 * what the host's pull does beyond copying (UploadFlag) and the pusher's `--include`/`--exclude`
 * rules, which the host sends back in its MANIFEST for the pusher to apply as it walks.
 */
export interface UploadRequest {
  path: string;
  source: string;
  bytes: number;
  files: number;
  /** UploadFlag bits; absent: none. Sent whenever `filters` is. */
  flags?: number | undefined;
  filters?: FilterRule[] | undefined;
}
/** `push --delete`: remove what the upload folder holds beyond SRC. `push --dry-run`: write nothing, report. */
export const UploadFlag = { DELETE: 1, DRY_RUN: 2 } as const;
const UPLOAD_FLAGS = UploadFlag.DELETE | UploadFlag.DRY_RUN;
const uploadFlagsCodec: Codec<number> = {
  preencode: uint8.preencode,
  encode: uint8.encode,
  decode(state) {
    const flags = uint8.decode(state);
    if ((flags & ~UPLOAD_FLAGS) !== 0)
      throw new TeleportError(ErrorCode.PROTOCOL, `unknown upload flags ${flags}`);
    return flags;
  },
};
export const uploadRequestCodec: Codec<UploadRequest> = struct<UploadRequest>({
  path,
  source: path,
  bytes: uint64,
  files: uint64,
  flags: trailing(uploadFlagsCodec),
  filters: trailing(array(filterRuleCodec, MAX_FILTER_RULES)),
});

/** UPLOAD_RESULT: "" and the summary's JSON when the upload is complete, else the error's code and message. */
export interface UploadResult {
  code: string;
  message: string;
  summary: string;
}
export const uploadResultCodec: Codec<UploadResult> = struct<UploadResult>({
  code: utf8(64),
  message: utf8(2048),
  summary: utf8(64 * 1024),
});

/**
 * UPLOAD_STREAM_WANTED and UPLOAD_STREAM: the one-time token the host names when it wants a data
 * stream from the pusher, which the pusher gives back on the stream it dials.
 */
export interface UploadStream {
  token: Buffer;
}
export const UPLOAD_STREAM_TOKEN_SIZE = 16;
export const uploadStreamWantedCodec: Codec<UploadStream> = struct<UploadStream>({
  token: fixedBytes(UPLOAD_STREAM_TOKEN_SIZE),
});
export const uploadStreamCodec: Codec<UploadStream> = uploadStreamWantedCodec;
