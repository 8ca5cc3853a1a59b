/**
 * File sizes that decide how a file is handled around the chunk index, on both sides. They nest:
 * a file up to UNINDEXED_FILE_BYTES never touches the index; one under UNJOURNALED_FILE_BYTES is
 * indexed once complete; a larger one is journaled chunk by chunk while it is written.
 */

/**
 * Files up to this size are never looked up in or recorded to the index: reading and hashing
 * one costs less than finding it there (see docs/decisions.md, "Small files bypass the index").
 */
export const UNINDEXED_FILE_BYTES = 16 * 1024;

/**
 * Files under this size are not journaled while written (a crash costs little to redo): they
 * are indexed once complete, many in one transaction, and leave no download to resume.
 */
export const UNJOURNALED_FILE_BYTES = 1024 * 1024;
