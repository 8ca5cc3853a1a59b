/**
 * A hostile relay, for tests only (in the style of serve/faults.ts): off unless a test sets
 * TELEPORT_RELAY_FAULT in the relay's environment, never by a flag. It changes what the relay
 * splices from host to client once a connection has carried OFFSET bytes that way:
 * - `alter:OFFSET` flips one bit of the byte at OFFSET;
 * - `replay:OFFSET` sends the piece that crosses OFFSET twice;
 * - `reorder:OFFSET` sends the second half of the piece that crosses OFFSET before its first.
 * `:COUNT` after OFFSET does it to the first COUNT spliced connections only (default: all).
 * `misroute` sends a CONNECT for a host it does not hold to one it does: a relay that lies about
 * whom it splices the client to (the client's pinning of the host's certificate must refuse it).
 * TELEPORT_RELAY_CAPTURE=FILE appends every spliced byte, both ways, to FILE: what a relay sees.
 */
import { appendFileSync } from "node:fs";

export type FaultKind = "alter" | "replay" | "reorder";

export interface RelayFaultSpec {
  kind: FaultKind;
  offset: number;
  /** Connections left to fault; Infinity for all. */
  remaining: number;
}

/** The fault and capture the environment asks for, read once as the relay starts. */
export interface RelayFaults {
  fault: RelayFaultSpec | undefined;
  misroute?: boolean;
  captureFile: string | undefined;
}

export function faultsFromEnvironment(env: NodeJS.ProcessEnv = process.env): RelayFaults {
  const text = env.TELEPORT_RELAY_FAULT;
  const match = text === undefined ? null : /^(alter|replay|reorder):(\d+)(?::(\d+))?$/.exec(text);
  const fault =
    match === null
      ? undefined
      : {
          kind: match[1] as FaultKind,
          offset: Number(match[2]),
          remaining: match[3] === undefined ? Number.POSITIVE_INFINITY : Number(match[3]),
        };
  return { fault, misroute: text === "misroute", captureFile: env.TELEPORT_RELAY_CAPTURE };
}

/** What one spliced connection's host-to-client bytes go through; undefined when nothing is faulted. */
export type PieceFilter = (piece: Buffer) => Buffer[];

/** A filter for the next spliced connection (spending one of the fault's count), or undefined. */
export function nextFaultFilter(faults: RelayFaults): PieceFilter | undefined {
  const fault = faults.fault;
  if (fault === undefined || fault.remaining <= 0) return undefined;
  fault.remaining -= 1;
  let carried = 0;
  let done = false;
  return (piece) => {
    const start = carried;
    carried += piece.length;
    if (done || carried <= fault.offset) return [piece];
    done = true;
    process.stderr.write(`teleport relay: injecting ${fault.kind} at byte ${fault.offset}\n`);
    if (fault.kind === "alter") {
      const altered = Buffer.from(piece);
      altered[fault.offset - start] = (altered[fault.offset - start] as number) ^ 0x01;
      return [altered];
    }
    if (fault.kind === "replay") return [piece, Buffer.from(piece)];
    const half = piece.length >> 1;
    return [Buffer.from(piece.subarray(half)), Buffer.from(piece.subarray(0, half))];
  };
}

/** Appends what a splice carried to the capture file, when a test asked for one. */
export function capture(faults: RelayFaults, piece: Buffer): void {
  if (faults.captureFile !== undefined) appendFileSync(faults.captureFile, piece);
}
