/**
 * What `rsync --stats` says a transfer moved: the figures teleport's own pull report is compared
 * with (literal data against bytes from the network, bytes received against bytes on the wire).
 */

export interface RsyncStats {
  /** Bytes of the files' contents that crossed as data: what the receiver could not match. */
  literalBytes: number;
  /** Bytes rebuilt from blocks of the receiver's old copy. */
  matchedBytes: number;
  /** Everything the client received: file list, checksums, literal data, protocol framing. */
  bytesReceived: number;
  /** Everything the client sent: its file list request and the old copies' block checksums. */
  bytesSent: number;
}

/**
 * Reads the `--stats` block of rsync's output (3.1 and later, without `-h`: digits with
 * thousands separators). Throws when a figure is missing: a run without them cannot be compared.
 */
export function parseRsyncStats(output: string): RsyncStats {
  const read = (label: string): number => {
    const match = new RegExp(`^${label}: ([\\d,.]+) bytes`, "m").exec(output);
    const digits = match?.[1]?.replaceAll(/[,.]/g, "");
    if (digits === undefined || digits === "") throw new Error(`rsync --stats printed no "${label}" line`);
    return Number(digits);
  };
  return {
    literalBytes: read("Literal data"),
    matchedBytes: read("Matched data"),
    bytesReceived: readTotal(output, "received"),
    bytesSent: readTotal(output, "sent"),
  };
}

/** "Total bytes received: 22,306" (no "bytes" after the number, unlike the lines above). */
function readTotal(output: string, direction: "sent" | "received"): number {
  const match = new RegExp(`^Total bytes ${direction}: ([\\d,.]+)$`, "m").exec(output);
  const digits = match?.[1]?.replaceAll(/[,.]/g, "");
  if (digits === undefined || digits === "")
    throw new Error(`rsync --stats printed no "Total bytes ${direction}" line`);
  return Number(digits);
}
