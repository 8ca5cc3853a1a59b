/**
 * The stream pool's data streams as it tracks them: which thread each runs on, its transport
 * and its state, in the order they were opened. Opening places a stream on a thread for its
 * transport (StreamThreads.for); dropping closes the most recently opened first.
 */
import { type TransportCounts, type TransportKind, transportCounts } from "../../transport/transport.js";
import type { BatchCarrier } from "./batch-queue.js";
import type { StreamThread, StreamThreads } from "./stream-threads.js";

export class PoolStream implements BatchCarrier {
  readonly id: number;
  readonly thread: StreamThread;
  readonly transport: TransportKind;
  state: "connecting" | "ready" | "dropping" | "lost" = "connecting";
  inFlightBytes = 0;
  abandoned = false;

  constructor(id: number, thread: StreamThread, transport: TransportKind) {
    this.id = id;
    this.thread = thread;
    this.transport = transport;
  }

  get ready(): boolean {
    return this.state === "ready";
  }
}

export class PoolStreams {
  readonly #threads: StreamThreads;
  /** Streams not yet lost, by id. */
  readonly byId = new Map<number, PoolStream>();
  /** Every stream's id, in the order they were opened. */
  readonly order: number[] = [];
  /** Most streams open at once. */
  peak = 0;
  #nextId = 1;

  constructor(threads: StreamThreads) {
    this.#threads = threads;
  }

  /** Opens a stream of `transport` on the thread for it. */
  open(transport: TransportKind): void {
    const thread = this.#threads.for(transport);
    const stream = new PoolStream(this.#nextId++, thread, transport);
    thread.streams++;
    this.byId.set(stream.id, stream);
    this.order.push(stream.id);
    this.peak = Math.max(this.peak, this.byId.size);
    thread.post({ op: "open", stream: stream.id, transport });
  }

  /** Forgets a stream its thread reported lost; returns it as it was, unless already forgotten. */
  lost(id: number): { transport: TransportKind; wasDropping: boolean } | undefined {
    const stream = this.byId.get(id);
    if (stream === undefined || stream.state === "lost") return undefined;
    const wasDropping = stream.state === "dropping";
    stream.state = "lost";
    this.byId.delete(id);
    stream.thread.streams--;
    return { transport: stream.transport, wasDropping };
  }

  /** Streams of `transport` not being dropped, the most recently opened first. */
  active(transport: TransportKind): PoolStream[] {
    return [...this.byId.values()]
      .filter((s) => s.transport === transport && s.state !== "dropping")
      .reverse();
  }

  /**
   * Closes the most recently opened `count` streams of `transport` once their batches are done,
   * or at once with `abort`, their batches handed to the other streams.
   */
  drop(count: number, transport: TransportKind, abort = false): void {
    for (const stream of this.active(transport).slice(0, count)) {
      stream.state = "dropping";
      stream.abandoned = abort;
      stream.thread.post({ op: "drop", stream: stream.id, abort });
    }
  }

  /** Whether any stream is connecting or carrying batches (not all being dropped). */
  get anyLive(): boolean {
    for (const stream of this.byId.values()) if (stream.state === "connecting" || stream.ready) return true;
    return false;
  }

  /** Streams connected and taking batches, per transport. */
  readyCounts(): TransportCounts {
    const ready = transportCounts();
    for (const stream of this.byId.values()) if (stream.ready) ready[stream.transport]++;
    return ready;
  }

  /** Bytes of the batches open on all streams. */
  get inFlightBytes(): number {
    let bytes = 0;
    for (const stream of this.byId.values()) bytes += stream.inFlightBytes;
    return bytes;
  }
}
