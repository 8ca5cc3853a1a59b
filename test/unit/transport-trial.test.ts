import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type TransportCounts,
  TransportTrial,
  type TrialAction,
} from "../../src/client/pool/transport-trial.js";
import type { TransportKind } from "../../src/transport/transport.js";

interface Path {
  rttMs: number;
  /** Bytes per second one stream of each transport carries. */
  perStream: TransportCounts;
  /** Whether streams of a transport connect at all (default both). */
  reachable?: TransportCounts;
  /** Whether the pool has all the work it can take at `ms` (default always). */
  steady?: (ms: number) => boolean;
}

/**
 * Runs a trial against a model path as the pool would (a tick every 50 ms, 16 streams), carrying
 * out its actions on a count of streams per transport. Streams connect one tick after opening.
 */
function simulate(path: Path, seconds: number, start: TransportKind = "tcp") {
  const other: TransportKind = start === "tcp" ? "quic" : "tcp";
  const trial = new TransportTrial(start, other, 0);
  const streams: TransportCounts = { tcp: 0, quic: 0, relay: 0 };
  streams[start] = 16;
  const connecting: TransportCounts = { tcp: 0, quic: 0, relay: 0 };
  const delivered: TransportCounts = { tcp: 0, quic: 0, relay: 0 };
  const actions: TrialAction[] = [];
  for (let now = 50; now <= seconds * 1000; now += 50) {
    for (const kind of ["tcp", "quic"] as const) {
      if (path.reachable?.[kind] !== 0) streams[kind] += connecting[kind];
      connecting[kind] = 0;
      delivered[kind] += streams[kind] * path.perStream[kind] * 0.05;
    }
    const action = trial.observe({
      nowMs: now,
      delivered,
      ready: { ...streams },
      streams: 16,
      steady: path.steady?.(now) ?? true,
      minRttMs: path.rttMs,
    });
    if (action === undefined) continue;
    actions.push(action);
    if (action.op === "try") connecting[action.transport] += action.streams;
    if (action.op === "end") streams[action.transport] = 0;
    if (action.op === "switch") {
      connecting[action.transport] += 16 - streams[action.transport];
      streams[action.transport === "tcp" ? "quic" : "tcp"] = 0;
    }
  }
  return { trial, actions, streams };
}

describe("TransportTrial", () => {
  it("moves the streams to QUIC where each QUIC stream delivers clearly more", () => {
    // TCP shaped to 1 MB/s per stream, QUIC not.
    const { trial, actions, streams } = simulate(
      { rttMs: 50, perStream: { tcp: 1e6, quic: 4e6, relay: 0 } },
      5,
    );
    assert.deepEqual(actions[0], { op: "try", transport: "quic", streams: 4 });
    assert.equal(actions[1]?.op, "switch");
    assert.equal(trial.current, "quic");
    assert.equal(streams.tcp, 0);
    assert.equal(streams.quic, 16);
    const switched = trial.steps.find((step) => step.reason === "switched");
    assert.ok(switched?.perStream !== null && switched?.perStream !== undefined);
    assert.ok(Math.abs(switched.perStream.quic / switched.perStream.tcp - 4) < 0.01);
  });

  it("keeps TCP where QUIC delivers about the same or less, and drops the trial's streams", () => {
    for (const quic of [0.5e6, 1e6, 1.2e6]) {
      const { trial, actions, streams } = simulate({ rttMs: 50, perStream: { tcp: 1e6, quic, relay: 0 } }, 5);
      assert.equal(trial.current, "tcp", `QUIC at ${quic} B/s per stream`);
      assert.deepEqual(actions.at(-1), { op: "end", transport: "quic" });
      assert.equal(streams.quic, 0);
      assert.equal(trial.steps.at(-1)?.reason, "kept");
    }
  });

  it("moves back to TCP when a later trial finds it better", () => {
    const { trial } = simulate({ rttMs: 50, perStream: { tcp: 3e6, quic: 1e6, relay: 0 } }, 5, "quic");
    assert.equal(trial.current, "tcp");
  });

  it("waits for the pool to be steady (tuner settled, long path, work enough)", () => {
    const { actions } = simulate(
      { rttMs: 50, perStream: { tcp: 1e6, quic: 4e6, relay: 0 }, steady: () => false },
      10,
    );
    assert.deepEqual(actions, []);
  });

  it("ends a trial when the work runs short, and tries again later", () => {
    // Not steady from 2.5 s to 4 s (a pause in the manifest, the pull's tail): the trial that
    // started at 1 s is dropped, and the next one, 30 s later, decides.
    const steady = (ms: number) => ms < 2500 || ms >= 4000;
    const { trial } = simulate({ rttMs: 50, perStream: { tcp: 1e6, quic: 4e6, relay: 0 }, steady }, 40);
    assert.deepEqual(
      trial.steps.map((step) => step.reason),
      ["start", "trying", "inconclusive", "trying", "switched"],
    );
  });

  it("goes on with the trial streams that connected when one is slow to", () => {
    const trial = new TransportTrial("tcp", "quic", 0);
    const base = { delivered: { tcp: 0, quic: 0, relay: 0 }, streams: 16, steady: true, minRttMs: 50 };
    assert.deepEqual(trial.observe({ ...base, nowMs: 1000, ready: { tcp: 16, quic: 0, relay: 0 } }), {
      op: "try",
      transport: "quic",
      streams: 4,
    });
    trial.observe({ ...base, nowMs: 1100, ready: { tcp: 16, quic: 3, relay: 0 } });
    trial.observe({ ...base, nowMs: 2200, ready: { tcp: 16, quic: 3, relay: 0 } });
    // Settled from 2.2 s, measured from 3.2 s, decided at 4.2 s: with 3 streams, not 4.
    trial.observe({ ...base, nowMs: 3200, ready: { tcp: 16, quic: 3, relay: 0 } });
    const decision = trial.observe({
      ...base,
      nowMs: 4200,
      delivered: { tcp: 16e6, quic: 12e6, relay: 0 },
      ready: { tcp: 16, quic: 3, relay: 0 },
    });
    assert.equal(decision?.op, "switch");
    assert.equal(trial.steps.at(-1)?.perStream?.quic, 4e6);
  });

  it("opens at most 8 trial streams", () => {
    const trial = new TransportTrial("tcp", "quic", 0);
    const action = trial.observe({
      nowMs: 1000,
      delivered: { tcp: 0, quic: 0, relay: 0 },
      ready: { tcp: 128, quic: 0, relay: 0 },
      streams: 128,
      steady: true,
      minRttMs: 50,
    });
    assert.deepEqual(action, { op: "try", transport: "quic", streams: 8 });
  });

  it("gives up on a transport whose streams never connect, and does not try it again", () => {
    const path: Path = {
      rttMs: 50,
      perStream: { tcp: 1e6, quic: 4e6, relay: 0 },
      reachable: { tcp: 1, quic: 0, relay: 0 },
    };
    const { trial, actions } = simulate(path, 120);
    assert.deepEqual(
      actions.map((action) => action.op),
      ["try", "end"],
    );
    assert.equal(trial.steps.at(-1)?.reason, "unavailable");
    assert.equal(trial.current, "tcp");
  });

  it("tries again later, less and less often", () => {
    const { trial } = simulate({ rttMs: 50, perStream: { tcp: 1e6, quic: 1e6, relay: 0 } }, 100);
    const trials = trial.steps.filter((step) => step.reason === "trying").map((step) => step.atMs);
    // At 1 s, then ~30 s after the first decision, then ~60 s after the second.
    assert.equal(trials.length, 3);
    assert.ok((trials[2] as number) - (trials[1] as number) > (trials[1] as number) - (trials[0] as number));
  });

  it("ends a trial whose stream was lost, and tries again later", () => {
    const trial = new TransportTrial("tcp", "quic", 0);
    const base = { delivered: { tcp: 0, quic: 0, relay: 0 }, streams: 16, steady: true, minRttMs: 50 };
    assert.equal(trial.observe({ ...base, nowMs: 1000, ready: { tcp: 16, quic: 0, relay: 0 } })?.op, "try");
    trial.observe({ ...base, nowMs: 1050, ready: { tcp: 16, quic: 4, relay: 0 } });
    assert.equal(trial.extraStreams, 4);
    assert.deepEqual(trial.lost(1100), { op: "end", transport: "quic" });
    assert.equal(trial.extraStreams, 0);
    assert.equal(trial.steps.at(-1)?.reason, "failed");
    assert.equal(trial.lost(1200), undefined);
  });
});
