/**
 * Two sockets joined byte for byte: a client's CONNECT and its host's ACCEPT leg. Each direction
 * reads only while the other socket takes what it is given (`write()` false pauses the reader
 * until 'drain'), and while its rate buckets are not in debt, so a splice holds at most one read
 * per direction, whatever either end does: the relay's memory is bounded by its connection count.
 */
import type { Socket } from "node:net";
import { capture, type PieceFilter, type RelayFaults } from "./relay-faults.js";
import type { TokenBucket } from "./relay-limits.js";

export interface SpliceOptions {
  /** Buckets every spliced byte is taken from, both ways (the host's, the connection's). */
  buckets: TokenBucket[];
  /** A silent splice (neither way) is closed after this long. */
  idleTimeoutMs: number;
  /** Tests only: the hostile relay's filter of host-to-client bytes, and the capture. */
  faults: RelayFaults;
  faultFilter: PieceFilter | undefined;
  /** Told once, when both sockets are closed. */
  onClosed: () => void;
}

/**
 * Splices `client` and `host`; `clientFirst`/`hostFirst` are bytes each sent after its last
 * relay frame, already read (a TLS ClientHello in the same read as ACCEPT, say).
 */
export function splice(
  client: { socket: Socket; remainder: Buffer },
  host: { socket: Socket; remainder: Buffer },
  options: SpliceOptions,
): void {
  let open = 2;
  const closed = () => {
    open -= 1;
    if (open === 0) options.onClosed();
  };
  const destroyBoth = () => {
    client.socket.destroy();
    host.socket.destroy();
  };
  for (const socket of [client.socket, host.socket]) {
    socket.setNoDelay(true);
    socket.setTimeout(options.idleTimeoutMs, destroyBoth);
    socket.once("error", destroyBoth);
    socket.once("close", closed);
  }
  pump(client.socket, host.socket, client.remainder, options, undefined);
  pump(host.socket, client.socket, host.remainder, options, options.faultFilter);
}

function pump(
  from: Socket,
  to: Socket,
  first: Buffer,
  options: SpliceOptions,
  filter: PieceFilter | undefined,
): void {
  let waits = 0;
  const resume = () => {
    waits -= 1;
    if (waits === 0 && !from.destroyed) from.resume();
  };
  const forward = (piece: Buffer) => {
    capture(options.faults, piece);
    for (const out of filter === undefined ? [piece] : filter(piece)) {
      if (!to.write(out)) {
        waits += 1;
        to.once("drain", resume);
      }
    }
    const now = performance.now();
    const debtMs = Math.max(0, ...options.buckets.map((bucket) => bucket.take(piece.length, now)));
    if (debtMs > 0) {
      waits += 1;
      setTimeout(resume, debtMs).unref();
    }
    if (waits > 0) from.pause();
  };
  if (first.length > 0) forward(first);
  from.on("data", forward);
  // Each direction ends on its own (TLS sends close_notify, then TCP's FIN); the other goes on.
  from.once("end", () => to.end());
  from.resume();
}
