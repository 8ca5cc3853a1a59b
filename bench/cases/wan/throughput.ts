/**
 * Throughput over the WAN: teleport beside iperf3 (the link's practical limit, one stream and
 * eight) and an rsync daemon (one plain TCP stream) on 100 Mbit/s and 1 Gbit/s links, with and
 * without 0.1% loss; teleport's throughput per --streams count; and what BBR set per socket is
 * worth to one stream. A run's throughput is payload bits over the pull command's wall time, so
 * it includes what a user waits for: process start (and netsim's, ~0.1 s), handshakes and TCP
 * slow start. teleport's own timing is in the details.
 */
import { describeLink, type LinkSettings, tcpGoodputMbit } from "../../lib/netsim.js";
import type { Benchmark, BenchOutcome, Check, Figure, Series } from "../../lib/types.js";
import { sizedContender } from "./contender.js";
import { singleStreamMbit } from "./ladder.js";
import {
  checkRsyncMultiple,
  type LinkRun,
  LOSSY_RENO,
  linkShareCheck,
  onLink,
  requireFigures,
  throughputRatios,
  WAN_PACKAGES,
} from "./on-link.js";
import {
  hostVariant,
  peerContenders,
  pullWithTeleport,
  rsyncContender,
  teleportContender,
} from "./session.js";

export interface WanTarget {
  name: string;
  title: string;
  target: string;
  settings: LinkSettings;
  /** Share of the link rate teleport must reach. */
  linkShare: number;
  /** Multiple of the rsync daemon's (one TCP stream) throughput teleport must reach. */
  rsyncMultiple?: number;
}

/** teleport with automatic streams against the peers, on one link. */
export function wanBenchmark(spec: WanTarget): Benchmark {
  return {
    name: spec.name,
    title: spec.title,
    target: spec.target,
    quick: false,
    packages: WAN_PACKAGES,
    run: (context) =>
      onLink(spec.name, spec.settings, context, {
        contenders: (session) => [teleportContender(session, "auto"), ...peerContenders(session)],
        report: (run) => wanOutcome(spec, run),
      }),
  };
}

function wanOutcome(spec: WanTarget, run: LinkRun): BenchOutcome {
  const required = requireFigures(run, ["teleport"]);
  if ("failed" in required) return required.failed;
  const [teleport] = required.figures;
  const notes: string[] = [];
  const checks = [linkShareCheck(teleport, spec.settings, spec.linkShare)];
  if (spec.rsyncMultiple !== undefined)
    checkRsyncMultiple(teleport, run.byTool, spec.rsyncMultiple, checks, notes);
  return {
    status: "ok",
    figures: run.figures,
    ratios: throughputRatios(teleport, spec.settings, run.byTool),
    checks,
    notes,
  };
}

const BBR_HOST = "teleport --streams 1 (host: bbr per socket)";
const RENO_HOST = "teleport --streams 1 (host: --congestion system)";

/**
 * One data stream from a host that sets BBR on its sockets (the default) and from one that leaves
 * the kernel's congestion control, reno on this link: what per-socket congestion control
 * (TCP_CONGESTION, through the native addon) is worth where a single connection meets loss.
 */
export const bbrSingleStream: Benchmark = {
  name: "wan_bbr_single",
  title: `one stream with BBR set per socket vs the system's reno, ${describeLink(LOSSY_RENO)}`,
  target: "BBR per socket >= 5x reno, one stream each",
  quick: false,
  packages: WAN_PACKAGES,
  run: (context) =>
    onLink("wan_bbr_single", LOSSY_RENO, context, {
      hostVariants: { system: ["--congestion", "system"] },
      contenders: (session) => {
        const single = (tool: string, expectedMbit: number, host = session.host) =>
          sizedContender(
            {
              tool,
              role: "subject",
              expectedMbit,
              details: { streams: 1 },
              run: (file) => pullWithTeleport(session, file, ["--streams", "1"], host),
            },
            session.ladder,
          );
        return [
          single(BBR_HOST, tcpGoodputMbit(LOSSY_RENO)),
          single(RENO_HOST, singleStreamMbit(LOSSY_RENO), hostVariant(session, "system")),
          ...(session.rsyncDaemon === null ? [] : [rsyncContender(session, session.rsyncDaemon)]),
        ];
      },
      report: bbrSingleOutcome,
    }),
};

function bbrSingleOutcome(run: LinkRun): BenchOutcome {
  const required = requireFigures(run, [BBR_HOST, RENO_HOST]);
  if ("failed" in required) return required.failed;
  const [bbr, reno] = required.figures;
  const gain = bbr.median / reno.median;
  return {
    status: "ok",
    figures: run.figures,
    ratios: [{ name: "bbr per socket vs system reno, one stream", value: gain }],
    checks: [{ description: `BBR per socket ${gain.toFixed(1)}x the system's reno (>= 5)`, met: gain >= 5 }],
  };
}

const STREAM_COUNTS = [1, 2, 4, 8, 16, 32, 64, 128] as const;

export const parallelStreams: Benchmark = {
  name: "parallel_streams",
  title: `teleport throughput per --streams count (and auto), ${describeLink(LOSSY_RENO)}`,
  target:
    "auto within 10% of the best fixed stream count, >= 50% of link rate, >= 5x a single TCP stream (rsync)",
  quick: false,
  packages: WAN_PACKAGES,
  run: (context) =>
    onLink("parallel_streams", LOSSY_RENO, context, {
      contenders: (session) => [
        teleportContender(session, "auto"),
        ...STREAM_COUNTS.map((streams) => teleportContender(session, streams)),
        ...peerContenders(session),
      ],
      report: parallelStreamsOutcome,
    }),
};

function parallelStreamsOutcome(run: LinkRun): BenchOutcome {
  const required = requireFigures(run, ["teleport"], "teleport (auto streams)");
  if ("failed" in required) return required.failed;
  const [auto] = required.figures;
  const { byTool } = run;
  const fixed = STREAM_COUNTS.flatMap((streams) => {
    const entry = byTool.get(`teleport --streams ${streams}`);
    return entry === undefined ? [] : [{ streams, figure: entry }];
  });
  const best = [...fixed].sort((a, b) => b.figure.median - a.figure.median)[0];
  const notes: string[] = [];
  const ratios = throughputRatios(auto, LOSSY_RENO, byTool);
  const checks: Check[] = [];
  if (best === undefined) {
    notes.push("no fixed stream count finished: auto not compared");
  } else {
    const share = auto.median / best.figure.median;
    ratios.push({ name: "auto vs best fixed streams", value: share });
    checks.push({
      description:
        `auto (${auto.median.toFixed(1)} Mbit/s) within 10% of the best fixed count ` +
        `(--streams ${best.streams}: ${best.figure.median.toFixed(1)} Mbit/s): ${(share * 100).toFixed(1)}%`,
      met: share >= 0.9,
    });
  }
  checks.push(linkShareCheck(auto, LOSSY_RENO, 0.5));
  checkRsyncMultiple(auto, byTool, 5, checks, notes);
  const autoRuns = auto.details?.runs;
  const autoStreams = Array.isArray(autoRuns)
    ? autoRuns.map((details: { streamsUsed?: unknown }) => details.streamsUsed)
    : undefined;
  notes.push(`auto used ${JSON.stringify(autoStreams)} streams per run`);
  return {
    status: "ok",
    figures: run.figures,
    ratios,
    checks,
    series: [streamsSeries(auto, fixed, byTool)],
    notes,
    details: { bestFixedStreams: best?.streams ?? null, autoStreamsUsed: autoStreams },
  };
}

function streamsSeries(
  auto: Figure,
  fixed: readonly { streams: number; figure: Figure }[],
  byTool: Map<string, Figure>,
): Series {
  const points: Series["points"] = fixed.map(({ streams, figure: entry }) => ({
    x: streams,
    y: entry.median,
    group: "teleport",
  }));
  points.push({ x: "auto", y: auto.median, group: "teleport" });
  // Plain TCP at the same stream counts, for reference: what the link gives N streams.
  const references: [string, number, string][] = [
    ["rsync-daemon", 1, "rsync-daemon"],
    ["iperf3", 1, "iperf3"],
    ["iperf3 -P 8", 8, "iperf3"],
  ];
  for (const [tool, x, group] of references) {
    const entry = byTool.get(tool);
    if (entry !== undefined) points.push({ x, y: entry.median, group });
  }
  return {
    title: `throughput vs streams, ${describeLink(LOSSY_RENO)}`,
    xLabel: "streams",
    yLabel: "Mbit/s",
    points,
  };
}
