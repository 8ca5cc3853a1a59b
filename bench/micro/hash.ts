/**
 * BLAKE3 throughput of src/chunking/hash.ts on one core, per buffer size: median and range of 5
 * half-second runs, as GB/s. Run: node dist/bench/micro/hash.js
 */
import { randomBytes } from "node:crypto";
import { hashBytes } from "../../src/chunking/hash.js";

const RUNS = 5;
const RUN_MS = 500;

function gigabytesPerSecond(data: Buffer): number {
  let hashed = 0;
  const started = performance.now();
  while (performance.now() - started < RUN_MS) {
    hashBytes(data);
    hashed += data.length;
  }
  return hashed / ((performance.now() - started) / 1000) / 1e9;
}

for (const size of [64 * 1024, 1024 * 1024, 4 * 1024 * 1024]) {
  const data = randomBytes(size);
  gigabytesPerSecond(data); // warm-up
  const rates = Array.from({ length: RUNS }, () => gigabytesPerSecond(data)).sort((a, b) => a - b);
  const round = (value: number | undefined) => Number((value ?? 0).toFixed(2));
  console.log(
    JSON.stringify({
      bytes: size,
      medianGBps: round(rates[2]),
      minGBps: round(rates[0]),
      maxGBps: round(rates[4]),
    }),
  );
}
