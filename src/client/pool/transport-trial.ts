/**
 * Which transport a pull's data streams use, from what each delivers: under `--transport auto`
 * the pool starts on the transport the control connection got through on, then tries the other
 * one during the transfer and moves its streams to whichever delivers more.
 *
 * A trial opens a quarter of the stream count (at most 8) as extra streams on the other
 * transport, lets those that connect leave slow start, then compares the bytes each transport
 * delivered per stream over the same interval. Streams of both transports take batches from the same queue with the same share of
 * the window, so each delivers what its own connection carries: on a path where TCP is shaped or
 * loses more, QUIC's streams deliver more, and where QUIC costs more CPU than the path gives
 * back, they deliver less. The other transport wins only by a clear margin (SWITCH_GAIN); then
 * all the streams move to it, otherwise its trial streams are dropped. Either way the loser is
 * tried again later (RETRY_MS, doubling), as paths change. A trial during which the work runs
 * short ends without a verdict: its rates would measure the pull, not the path.
 *
 * Trials run only on paths long enough for the stream tuner to probe (MIN_PROBE_RTT_MS), once it
 * has settled and while the pool has all the work it can take: on a short path the CPU is what
 * limits a pull, and QUIC takes 2.3x TCP's CPU per byte here.
 *
 * Like the tuner, this is policy only: it sees byte counts and times, never a socket, and is
 * tested with made-up measurements.
 */
import { type TransportCounts, type TransportKind, transportCounts } from "../../transport/transport.js";

/** Per-stream delivery of the other transport, as a multiple of the current one's, to move to it. */
const SWITCH_GAIN = 1.25;
/**
 * Extra streams a trial opens: this share of the stream count, at least one and at most
 * MAX_TRIAL_STREAMS (each is a handshake, and CPU, on a machine already moving the pull).
 */
const TRIAL_SHARE = 0.25;
const MAX_TRIAL_STREAMS = 8;
/** The first trial waits this long after the pool starts, for the streams to leave slow start. */
const FIRST_TRIAL_MS = 1000;
/** Time the trial streams get to leave slow start before they are measured: the larger of these. */
const SETTLE_MS = 1000;
const SETTLE_RTTS = 8;
/** The interval both transports are measured over: the larger of these. */
const MEASURE_MS = 1000;
const MEASURE_RTTS = 10;
/** A decided trial is tried again after this, doubling each time. */
const RETRY_MS = 30_000;
/**
 * A trial with none of its streams connected by then is given up on: a QUIC handshake takes
 * two round trips, and the binding ignores ICMP, so a filtered UDP path shows only as silence.
 */
const CONNECT_MS = 5000;
/**
 * A trial goes on with the streams that connected once this long has passed (the larger of
 * these): under loss one handshake can take seconds of retransmission timeouts, and waiting for
 * it would hold the trial's other streams, with their batches, for as long.
 */
const SOME_CONNECTED_MS = 1000;
const SOME_CONNECTED_RTTS = 4;

export type { TransportCounts } from "../../transport/transport.js";

/** What the pool is to do with its streams. */
export type TrialAction =
  /** Open `streams` extra streams on `transport`. */
  | { op: "try"; transport: TransportKind; streams: number }
  /** Open `transport` streams up to the count, and drop every stream of the other. */
  | { op: "switch"; transport: TransportKind; gain: number }
  /** Drop the trial's streams on `transport`. */
  | { op: "end"; transport: TransportKind };

export interface TrialStep {
  /** Milliseconds since the pool started. */
  atMs: number;
  /** The transport the streams use from here on. */
  transport: TransportKind;
  /** Bytes per second per stream each transport delivered over the trial's interval. */
  perStream: TransportCounts | null;
  reason: "start" | "trying" | "switched" | "kept" | "inconclusive" | "failed" | "unavailable";
}

/** What the pool knows at a tick. */
export interface TrialObservation {
  nowMs: number;
  /** Bytes delivered on each transport since the pool started. */
  delivered: TransportCounts;
  /** Streams connected and taking batches on each transport. */
  ready: TransportCounts;
  /** The stream count the tuner wants. */
  streams: number;
  /** The tuner has settled, the path is long enough to probe, and the streams have work enough. */
  steady: boolean;
  minRttMs: number;
}

/** Measuring: since when, and what each transport had delivered by then. */
interface Measuring {
  phase: "measuring";
  since: number;
  from: TransportCounts;
}

type TrialState =
  | { phase: "waiting" | "unavailable" }
  | { phase: "connecting" | "settling"; since: number }
  | Measuring;

export class TransportTrial {
  readonly steps: TrialStep[] = [];
  /** The transport new streams are opened on. */
  current: TransportKind;
  readonly #startedAt: number;
  #other: TransportKind;
  /** Where the trial is; `since` is when it got there, `from` what was delivered by then. */
  #state: TrialState = { phase: "waiting" };
  #nextTrialAtMs: number;
  #retryMs = RETRY_MS;
  #trialStreams = 0;
  /** Whether a stream of the other transport ever connected: if none does, it is not tried again. */
  #otherReachable = false;

  constructor(current: TransportKind, other: TransportKind, nowMs: number) {
    this.current = current;
    this.#other = other;
    this.#startedAt = nowMs;
    this.#nextTrialAtMs = nowMs + FIRST_TRIAL_MS;
    this.steps.push({ atMs: 0, transport: current, perStream: null, reason: "start" });
  }

  /** Extra streams open for a trial, beyond the tuner's count. */
  get extraStreams(): number {
    const { phase } = this.#state;
    return phase === "connecting" || phase === "settling" || phase === "measuring" ? this.#trialStreams : 0;
  }

  observe(o: TrialObservation): TrialAction | undefined {
    const state = this.#state;
    switch (state.phase) {
      case "unavailable":
        return undefined;
      case "waiting": {
        if (!o.steady || o.nowMs < this.#nextTrialAtMs) return undefined;
        this.#trialStreams = Math.min(MAX_TRIAL_STREAMS, Math.max(1, Math.round(o.streams * TRIAL_SHARE)));
        this.#state = { phase: "connecting", since: o.nowMs };
        this.#step(o.nowMs, this.current, null, "trying");
        return { op: "try", transport: this.#other, streams: this.#trialStreams };
      }
      case "connecting": {
        const ready = o.ready[this.#other];
        const waited = o.nowMs - state.since;
        if (ready > 0) this.#otherReachable = true;
        if (!o.steady) return this.#inconclusive(o.nowMs);
        if (ready === 0) return waited >= CONNECT_MS ? this.lost(o.nowMs) : undefined;
        const enough = waited >= Math.max(SOME_CONNECTED_MS, SOME_CONNECTED_RTTS * o.minRttMs);
        if (ready < this.#trialStreams && !enough) return undefined;
        this.#state = { phase: "settling", since: o.nowMs };
        return undefined;
      }
      case "settling":
        if (!o.steady) return this.#inconclusive(o.nowMs);
        if (o.nowMs - state.since < Math.max(SETTLE_MS, SETTLE_RTTS * o.minRttMs)) return undefined;
        this.#state = { phase: "measuring", since: o.nowMs, from: { ...o.delivered } };
        return undefined;
      case "measuring":
        return this.#measure(o, state);
    }
  }

  #measure(o: TrialObservation, { since, from }: Measuring): TrialAction | undefined {
    if (!o.steady) return this.#inconclusive(o.nowMs);
    const elapsedMs = o.nowMs - since;
    if (elapsedMs < Math.max(MEASURE_MS, MEASURE_RTTS * o.minRttMs)) return undefined;
    const perStream = (kind: TransportKind) =>
      o.ready[kind] === 0 ? 0 : ((o.delivered[kind] - from[kind]) * 1000) / elapsedMs / o.ready[kind];
    const rates = transportCounts(perStream);
    const other = this.#other;
    if (rates[other] >= SWITCH_GAIN * rates[this.current]) {
      const previous = this.current;
      this.#other = previous;
      this.current = other;
      this.#end(o.nowMs, "switched", rates);
      return { op: "switch", transport: other, gain: rates[other] / rates[previous] };
    }
    return this.#end(o.nowMs, "kept", rates);
  }

  /**
   * The work ran short during a trial (the pull's tail, a pause in the manifest): a rate measured
   * now would measure the pull, not the path, and the trial's streams would hold batches the end
   * of the pull waits for. The trial ends, to be tried again later.
   */
  #inconclusive(nowMs: number): TrialAction {
    return this.#end(nowMs, "inconclusive", null);
  }

  /**
   * A trial stream was lost. Its trial ends; if no stream of that transport ever connected (UDP
   * filtered, the host not listening), the transport is not tried again.
   */
  lost(nowMs: number): TrialAction | undefined {
    if (this.extraStreams === 0) return undefined;
    return this.#end(nowMs, this.#otherReachable ? "failed" : "unavailable", null);
  }

  /**
   * Ends the trial: the next one is due after the back-off, unless the transport turned out
   * unreachable. Returns the action that drops the trial's streams (for a switch, the caller
   * has already swapped the transports and returns its own).
   */
  #end(nowMs: number, reason: TrialStep["reason"], rates: TransportCounts | null): TrialAction {
    this.#state = { phase: reason === "unavailable" ? "unavailable" : "waiting" };
    this.#nextTrialAtMs = nowMs + this.#retryMs;
    this.#retryMs *= 2;
    this.#step(nowMs, this.current, rates, reason);
    return { op: "end", transport: this.#other };
  }

  #step(
    nowMs: number,
    transport: TransportKind,
    perStream: TransportCounts | null,
    reason: TrialStep["reason"],
  ) {
    this.steps.push({ atMs: Math.round(nowMs - this.#startedAt), transport, perStream, reason });
  }
}
