/** The zstd levels teleport compresses at, apart from zstd.ts so the CLI can name them without loading the binding. */
export const MIN_LEVEL = 1;
export const MAX_LEVEL = 19;
