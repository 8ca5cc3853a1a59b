/**
 * Sizes every message body is checked against, in one place so that messages.ts and the
 * message files kept apart from it (delta-messages.ts) cannot disagree.
 */

/** A BLAKE3 hash. */
export const HASH_SIZE = 32;
export const MAX_CHUNK_SIZE = 4 * 1024 * 1024;
/** Largest frame body either side accepts: one chunk plus its small header. */
export const MAX_FRAME_BODY = MAX_CHUNK_SIZE + 1024;
export const MAX_PATH_BYTES = 4096;
export const MAX_NAME_BYTES = 255;

/** `--include`/`--exclude` rules one MANIFEST request may carry, and the bytes of one pattern. */
export const MAX_FILTER_RULES = 256;
export const MAX_PATTERN_BYTES = 1024;
