/**
 * What cutting and hashing cost per byte as the host lists a file, with the addon's cut-point scan
 * (native/cdc.c) and with the JS one: the scan alone, the scan with BLAKE3 per chunk
 * (chunkBytes), and BLAKE3's cost per call at the
 * sizes small files and chunks have, to see how much of hashing is the call itself. The data is
 * one 1 MiB buffer, the host's read buffer, scanned `--mib` times: in the cache, as a buffer just
 * read is. Speeds are per second of this process's CPU time: on a shared machine the wall clock
 * also counts the time other processes held the core. Prints markdown tables; medians of `--runs`.
 *
 *   node dist/bench/micro/cdc-scan.js [--mib 256] [--runs 5]
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { type Chunker, ContentDefinedChunker } from "../../src/chunking/chunker.js";
import { hashBytes } from "../../src/chunking/hash.js";
import { chunkBytes } from "../../src/chunking/manifest.js";
import { nativeCdc } from "../../src/platform/native.js";
import { median } from "../lib/stats.js";

const KIB = 1024;
const MIB = 1024 * KIB;

const { values } = parseArgs({
  options: { mib: { type: "string", default: "256" }, runs: { type: "string", default: "5" } },
});
const repeats = Number(values.mib);
const size = repeats * MIB;
const runs = Number(values.runs);
const data = randomBytes(MIB);
const lengths = new Uint32Array(256);
if (nativeCdc === undefined) console.error("the addon is not loaded: only the JS scan is measured");

function cutAll(chunker: Chunker): number {
  let chunks = 0;
  for (let repeat = 0; repeat < repeats; repeat++) {
    for (let at = 0; at < data.length; ) {
      const count = chunker.cut(data.subarray(at), true, lengths);
      for (let i = 0; i < count; i++) at += lengths[i] as number;
      chunks += count;
    }
  }
  return chunks;
}

/** Median GB/s of `operation` over `bytes`, per second of CPU time. */
function gbPerSecond(bytes: number, operation: () => unknown): number {
  const speeds: number[] = [];
  for (let run = 0; run < runs; run++) {
    const started = process.cpuUsage();
    operation();
    const used = process.cpuUsage(started);
    speeds.push(bytes / 1e9 / ((used.user + used.system) / 1e6));
  }
  return median(speeds);
}

const scans = [{ name: "JS (nextChunkLength)", chunker: new ContentDefinedChunker(undefined, null) }];
if (nativeCdc !== undefined)
  scans.unshift({ name: "native (cdc.c)", chunker: new ContentDefinedChunker(undefined, nativeCdc) });
console.log(`a 1 MiB random buffer ${repeats} times, ${scans[0]?.chunker.id}, median of ${runs} runs\n`);
console.log("| scan | cut GB/s | cut + BLAKE3 GB/s |");
console.log("| --- | --- | --- |");
for (const { name, chunker } of scans) {
  const cut = gbPerSecond(size, () => cutAll(chunker));
  const hashed = gbPerSecond(size, () => {
    for (let repeat = 0; repeat < repeats; repeat++) chunkBytes(data, chunker);
  });
  console.log(`| ${name} | ${cut.toFixed(2)} | ${hashed.toFixed(2)} |`);
}

console.log("\n| BLAKE3 one call of | ns per call | GB/s |");
console.log("| --- | --- | --- |");
for (const bytes of [32, KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB]) {
  const calls = Math.max(16, Math.floor(size / bytes / 4));
  const piece = data.subarray(0, bytes);
  const speed = gbPerSecond(calls * bytes, () => {
    for (let i = 0; i < calls; i++) hashBytes(piece);
  });
  console.log(`| ${bytes} B | ${Math.round(bytes / speed)} | ${speed.toFixed(2)} |`);
}
