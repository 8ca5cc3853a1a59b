import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StreamTuner, type TunerOptions } from "../../src/client/pool/stream-tuner.js";

const MiB = 1024 * 1024;
const OPTIONS: TunerOptions = {
  initialStreams: 4,
  shortPathStreams: 4,
  maxStreams: 64,
  pinned: false,
  minWindowBytes: 16 * MiB,
  maxWindowBytes: 256 * MiB,
};

interface Path {
  rttMs: number;
  /** Bytes per second the path gives this many streams at `ms`, before the window limits them. */
  rate(streams: number, ms: number): number;
  /** RTT under load, when it differs from the idle one (a queue filling up). */
  loadedRttMs?: (streams: number) => number;
}

/** Runs a tuner against a model path for `seconds`, as the pool would: a tick every 50 ms. */
function simulate(path: Path, seconds: number, options: TunerOptions = OPTIONS) {
  const tuner = new StreamTuner(options, 0);
  let delivered = 0;
  for (let now = 50; now <= seconds * 1000; now += 50) {
    tuner.rtt(path.loadedRttMs?.(tuner.streams) ?? path.rttMs);
    const rate = Math.min(path.rate(tuner.streams, now), tuner.windowBytes / (path.rttMs / 1000));
    delivered += rate * 0.05;
    tuner.observe(now, delivered);
  }
  return tuner;
}

describe("StreamTuner", () => {
  it("grows to many streams where each is held back by loss", () => {
    // reno at 0.1% loss, 50 ms RTT: ~9 Mbit/s per stream, up to a 1 Gbit/s link.
    const lossy: Path = { rttMs: 50, rate: (n) => Math.min(n * 1.1e6, 120e6) };
    const tuner = simulate(lossy, 4);
    assert.equal(tuner.streams, 64, JSON.stringify(tuner.steps));
    const reached = tuner.steps.find((step) => step.streams === 64);
    assert.ok(reached !== undefined && reached.atMs <= 2000, `64 streams after ${reached?.atMs} ms`);
  });

  it("stops where more streams stop paying, and keeps the fewest that deliver the best rate", () => {
    // Streams scale to 17, then the link is full: 32 and 64 streams deliver 100, 8 deliver 48.
    const path: Path = { rttMs: 50, rate: (n) => Math.min(n * 6e6, 100e6) };
    const tuner = simulate(path, 10);
    assert.equal(tuner.streams, 32, JSON.stringify(tuner.steps));
    assert.deepEqual(
      tuner.steps.map((step) => step.streams),
      [4, 8, 32, 64, 32],
    );
    const last = tuner.steps.at(-1);
    assert.ok(last !== undefined && last.atMs < 4000, "it settles within a few seconds");
  });

  it("keeps the count where one more doubling gains nothing", () => {
    const full: Path = { rttMs: 50, rate: () => 110e6 };
    const tuner = simulate(full, 5);
    assert.equal(tuner.streams, 4, JSON.stringify(tuner.steps));
    assert.deepEqual(
      tuner.steps.map((step) => step.streams),
      [4, 8, 4],
    );
  });

  it("measures a count from its first bytes, not while its streams still connect", () => {
    // Nothing arrives for the first second (worker threads booting, handshakes), then any count
    // fills the link: the first count's rate must not be taken from the silence.
    const connecting: Path = { rttMs: 50, rate: (_n, ms) => (ms <= 1000 ? 0 : 110e6) };
    const tuner = simulate(connecting, 5);
    assert.equal(tuner.streams, 4, JSON.stringify(tuner.steps));
    assert.deepEqual(
      tuner.steps.map((step) => step.streams),
      [4, 8, 4],
    );
    const probed = tuner.steps[1];
    assert.ok(probed !== undefined && probed.atMs >= 1350, `probed at ${probed?.atMs} ms, before settling`);
  });

  it("never probes a path with a sub-millisecond RTT, where streams only share the CPU", () => {
    const loopback: Path = { rttMs: 0.1, rate: (n) => n * 100e6 };
    const tuner = simulate(loopback, 5);
    assert.equal(tuner.streams, 4);
  });

  it("stops growing when the round trip inflates: the queue is filling, not the pipe", () => {
    const bloated: Path = {
      rttMs: 20,
      rate: (n) => Math.min(n * 3e6, 60e6),
      loadedRttMs: (n) => (n >= 8 ? 80 : 20),
    };
    const tuner = simulate(bloated, 5);
    assert.equal(tuner.streams, 8, JSON.stringify(tuner.steps));
    assert.equal(tuner.steps.at(-1)?.reason, "settled");
  });

  it("takes a rate that is still climbing for slow start, not for streams paying off", () => {
    // Any count fills the link, once TCP has ramped up over the first second.
    const ramping: Path = { rttMs: 50, rate: (_n, ms) => Math.min(110e6, 5e6 * 2 ** (ms / 100)) };
    const tuner = simulate(ramping, 5);
    assert.equal(tuner.streams, 4, JSON.stringify(tuner.steps));
  });

  it("sizes the window to four times the bandwidth-delay product, within its bounds", () => {
    // 1 Gbit/s at 100 ms RTT: a BDP of 12.5 MB, so 50 MB in flight.
    const fat: Path = { rttMs: 100, rate: () => 125e6 };
    const tuner = simulate(fat, 5, { ...OPTIONS, pinned: true });
    assert.ok(tuner.windowBytes >= 49e6 && tuner.windowBytes <= 51e6, `${tuner.windowBytes}`);
    // Far more than the bound allows.
    const huge = simulate({ rttMs: 400, rate: () => 2e9 }, 5, { ...OPTIONS, pinned: true });
    assert.equal(huge.windowBytes, 256 * MiB);
  });

  it("ignores intervals when the streams ran short of work, such as a transfer's tail", () => {
    const tuner = new StreamTuner(OPTIONS, 0);
    tuner.rtt(50);
    let delivered = 0;
    // Loss-bound streams, fed until 1 s, then starved: the tail must not read as a slow count.
    for (let now = 50; now <= 3000; now += 50) {
      const fed = now <= 1000;
      delivered += (fed ? tuner.streams * 1.1e6 : 1e5) * 0.05;
      tuner.observe(now, delivered, fed);
    }
    assert.ok(tuner.streams >= 16, JSON.stringify(tuner.steps));
    assert.ok(!tuner.steps.some((step) => step.reason === "reverted"), JSON.stringify(tuner.steps));
  });

  it("changes only the window when the count is pinned", () => {
    const lossy: Path = { rttMs: 50, rate: (n) => n * 1.1e6 };
    const tuner = simulate(lossy, 5, { ...OPTIONS, initialStreams: 3, pinned: true });
    assert.equal(tuner.streams, 3);
    assert.equal(tuner.steps.length, 1);
  });

  it("goes down to the short-path count once a round trip shows the path is short", () => {
    // A loaded host answered the first pings in 8 ms; then one came back in 1 ms (loopback).
    let rttMs = 8;
    const loopback: Path = { rttMs: 8, rate: () => 500e6, loadedRttMs: () => rttMs };
    const tuner = new StreamTuner({ ...OPTIONS, initialStreams: 16 }, 0);
    let delivered = 0;
    for (let now = 50; now <= 2000; now += 50) {
      if (now === 1000) rttMs = 1;
      tuner.rtt(loopback.loadedRttMs?.(tuner.streams) ?? loopback.rttMs);
      delivered += 500e6 * 0.05;
      tuner.observe(now, delivered);
    }
    assert.equal(tuner.streams, OPTIONS.shortPathStreams, JSON.stringify(tuner.steps));
    assert.equal(tuner.steps.at(-1)?.reason, "short-path");
    // Pinned counts stay put.
    const pinned = new StreamTuner({ ...OPTIONS, initialStreams: 16, pinned: true }, 0);
    pinned.rtt(1);
    pinned.observe(50, 1e6);
    assert.equal(pinned.streams, 16);
  });
});
