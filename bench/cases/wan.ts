/**
 * Pulls over an emulated WAN (../shared/tools/netsim, 50 ms RTT), in the order targets.md lists
 * them. The servers run in netsim host b, every client in host a (wan/session.ts); payloads are
 * sized per tool from a ladder of files (wan/ladder.ts).
 */
import type { Benchmark } from "../lib/types.js";
import { LOSSY_RENO, ONE_GBIT_50MS } from "./wan/on-link.js";
import { bbrSingleStream, parallelStreams, wanBenchmark } from "./wan/throughput.js";
import { transportBenchmarks } from "./wan/transports.js";
import { compressTextWan, wanManySmall } from "./wan/workloads.js";

export const wanBenchmarks: Benchmark[] = [
  wanBenchmark({
    name: "wan_100m_50ms",
    title: "pull over 100 Mbit/s, 50 ms RTT",
    target: ">= 95% of link rate",
    settings: { rateMbit: 100, delayMs: 25, loss: 0 },
    linkShare: 0.95,
  }),
  wanBenchmark({
    name: "wan_1g_50ms",
    title: "pull over 1 Gbit/s, 50 ms RTT",
    target: ">= 90% of link rate",
    settings: ONE_GBIT_50MS,
    linkShare: 0.9,
  }),
  wanBenchmark({
    name: "wan_1g_50ms_loss_reno",
    title: "pull over 1 Gbit/s, 50 ms RTT, 0.1% loss, reno congestion control",
    target: ">= 50% of link rate and >= 5x a single TCP stream (rsync)",
    settings: LOSSY_RENO,
    linkShare: 0.5,
    rsyncMultiple: 5,
  }),
  wanBenchmark({
    name: "wan_1g_50ms_loss_bbr",
    title: "pull over 1 Gbit/s, 50 ms RTT, 0.1% loss, bbr congestion control",
    target: ">= 90% of link rate",
    settings: { ...ONE_GBIT_50MS, loss: 0.001 },
    linkShare: 0.9,
  }),
  parallelStreams,
  bbrSingleStream,
  wanManySmall,
  compressTextWan("compress_text_wan", ONE_GBIT_50MS),
  compressTextWan("compress_text_wan_100m", { rateMbit: 100, delayMs: 25, loss: 0 }),
  ...transportBenchmarks,
];
