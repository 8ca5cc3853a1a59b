/**
 * One large file pulled over each transport (`--transport tcp|quic|auto`) on links of 100 Mbit/s
 * and 1 Gbit/s at 50 ms, without loss and with 1%, under reno and BBR. TCP's congestion control
 * is the link's setting; quinn runs its own (cubic) whatever the kernel's.
 */
import { describeLink, type LinkSettings } from "../../lib/netsim.js";
import type { Benchmark, BenchOutcome } from "../../lib/types.js";
import { sizedContender } from "./contender.js";
import { singleStreamMbit } from "./ladder.js";
import { type LinkRun, onLink, requireFigures, WAN_PACKAGES } from "./on-link.js";
import { pullWithTeleport } from "./session.js";

const TRANSPORTS = ["tcp", "quic", "auto"] as const;

function transportWan(name: string, settings: LinkSettings): Benchmark {
  return {
    name,
    title: `TCP pool vs QUIC vs auto, ${describeLink(settings)}`,
    target: "auto within 10% of the better of TCP and QUIC",
    quick: false,
    packages: WAN_PACKAGES,
    run: (context) =>
      onLink(name, settings, context, {
        contenders: (session) =>
          TRANSPORTS.map((transport) =>
            sizedContender(
              {
                tool: `teleport --transport ${transport}`,
                role: "subject",
                expectedMbit: singleStreamMbit(settings),
                details: { transport },
                run: (file) => pullWithTeleport(session, file, ["--transport", transport]),
              },
              session.ladder,
            ),
          ),
        report: transportWanOutcome,
      }),
  };
}

function transportWanOutcome(run: LinkRun): BenchOutcome {
  const required = requireFigures(run, [
    "teleport --transport tcp",
    "teleport --transport quic",
    "teleport --transport auto",
  ]);
  if ("failed" in required) return required.failed;
  const [tcp, quic, auto] = required.figures;
  const best = Math.max(tcp.median, quic.median);
  return {
    status: "ok",
    figures: run.figures,
    ratios: [
      { name: "quic vs tcp", value: quic.median / tcp.median },
      { name: "auto vs the better of tcp and quic", value: auto.median / best },
    ],
    checks: [
      {
        description: `auto ${(auto.median / best).toFixed(2)}x the better of TCP and QUIC (>= 0.9)`,
        met: auto.median >= 0.9 * best,
      },
    ],
  };
}

/** transport_{100m,1g}_{clean,loss1}_{reno,bbr}. */
export const transportBenchmarks: Benchmark[] = [100, 1000].flatMap((rateMbit) =>
  [0, 0.01].flatMap((loss) =>
    (["reno", "bbr"] as const).map((congestionControl) =>
      transportWan(
        `transport_${rateMbit === 100 ? "100m" : "1g"}_${loss === 0 ? "clean" : "loss1"}_${congestionControl}`,
        { rateMbit, delayMs: 25, loss, congestionControl },
      ),
    ),
  ),
);
