/**
 * micro: teleport's hot functions in isolation (BLAKE3, chunkFile, wire codecs, FrameDecoder)
 * beside memcpy, SHA-256 and TLS 1.3 per cipher suite measured in the same run. The harness and
 * tasks live in bench/micro/; `node dist/bench/micro/run.js` runs the same suite on its own.
 */
import { join } from "node:path";
import type { Benchmark } from "../lib/types.js";
import { BLAKE3_MIN_MBPS, FRAME_DECODE_MIN_MBPS } from "../micro/outcome.js";
import { runMicroSuite } from "../micro/suite.js";

export const microBenchmark: Benchmark = {
  name: "micro",
  title:
    "Hot functions in isolation: BLAKE3, chunkFile, wire codecs, FrameDecoder, against memcpy, SHA-256 and TLS",
  target: `BLAKE3 on 1 MiB >= ${BLAKE3_MIN_MBPS} MB/s on one core; FrameDecoder >= ${FRAME_DECODE_MIN_MBPS} MB/s`,
  quick: true,
  async run(context) {
    try {
      const { outcome } = await runMicroSuite({
        quick: context.quick,
        rounds: context.runs,
        scratchDir: join(context.workDir, "scratch"),
        log: (message) => context.log(message),
      });
      return outcome;
    } catch (err) {
      return { status: "failed", reason: err instanceof Error ? err.message : String(err) };
    }
  },
};
