/**
 * How big should content-defined chunks be? For each candidate min/avg/max this cuts a random
 * buffer and two edited copies of it, and reports: chunker speed (boundaries only, and with
 * BLAKE3), manifest size per GiB, and the share of bytes an edited copy would fetch (chunks whose
 * hash the original does not have). Edits: 1 byte inserted at the start; 10% rewritten in place
 * in 1 MiB patches and in 64 KiB patches at random spots.
 *
 *   node dist/bench/micro/cdc-sizes.js [--mib 256] [--runs 3]
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import {
  type CdcSizes,
  type Chunker,
  ContentDefinedChunker,
  FixedChunker,
} from "../../src/chunking/chunker.js";
import { hashBytes } from "../../src/chunking/hash.js";
import { median } from "../lib/stats.js";

const KIB = 1024;
const MIB = 1024 * KIB;
const MANIFEST_BYTES_PER_CHUNK = 44;

const { values } = parseArgs({
  options: { mib: { type: "string", default: "256" }, runs: { type: "string", default: "3" } },
});
const size = Number(values.mib) * MIB;
const runs = Number(values.runs);

const candidates: Array<{ name: string; chunker: Chunker }> = [
  ...[8, 16, 32, 64, 128, 256].map((avgKib) => {
    const sizes: CdcSizes = { min: (avgKib * KIB) / 4, avg: avgKib * KIB, max: avgKib * KIB * 4 };
    return {
      name: `cdc ${avgKib / 4}/${avgKib}/${avgKib * 4} KiB`,
      chunker: new ContentDefinedChunker(sizes),
    };
  }),
  ...[
    { min: 32, avg: 64, max: 256, normalization: 2 },
    { min: 16, avg: 64, max: 256, normalization: 3 },
    { min: 32, avg: 64, max: 192, normalization: 3 },
    { min: 48, avg: 64, max: 128, normalization: 3 },
  ].map(({ min, avg, max, normalization }) => ({
    name: `cdc ${min}/${avg}/${max} KiB, NC${normalization}`,
    chunker: new ContentDefinedChunker({ min: min * KIB, avg: avg * KIB, max: max * KIB, normalization }),
  })),
  { name: "fixed 64 KiB", chunker: new FixedChunker(64 * KIB) },
  { name: "fixed 1 MiB", chunker: new FixedChunker(MIB) },
];

function cut(chunker: Chunker, data: Buffer): number[] {
  const lengths: number[] = [];
  for (let start = 0; start < data.length; ) {
    const length = chunker.nextChunkLength(data.subarray(start), true);
    lengths.push(length);
    start += length;
  }
  return lengths;
}

function chunkHashes(chunker: Chunker, data: Buffer): Array<{ hash: string; size: number }> {
  let start = 0;
  return cut(chunker, data).map((length) => {
    const hash = hashBytes(data.subarray(start, start + length)).toString("latin1");
    start += length;
    return { hash, size: length };
  });
}

/** Share of `edited`'s bytes in chunks the original does not have. */
function fetchedShare(chunker: Chunker, original: Buffer, edited: Buffer): number {
  const have = new Set(chunkHashes(chunker, original).map((chunk) => chunk.hash));
  let fetched = 0;
  for (const chunk of chunkHashes(chunker, edited)) if (!have.has(chunk.hash)) fetched += chunk.size;
  return fetched / edited.length;
}

function rewritten(original: Buffer, patchBytes: number): Buffer {
  const copy = Buffer.from(original);
  const patches = Math.round((original.length * 0.1) / patchBytes);
  const slots = original.length / patchBytes;
  const chosen = new Set<number>();
  while (chosen.size < patches) chosen.add(Math.floor(Math.random() * slots));
  for (const slot of chosen) randomBytes(patchBytes).copy(copy, slot * patchBytes);
  return copy;
}

function mbPerSecond(bytes: number, seconds: number): number {
  return bytes / 1e6 / seconds;
}

const original = randomBytes(size);
const inserted = Buffer.concat([Buffer.from([0x42]), original]);
const patchedLarge = rewritten(original, MIB);
const patchedSmall = rewritten(original, 64 * KIB);

const percent = (share: number) => `${(share * 100).toFixed(2)}%`;
console.log(`${size / MIB} MiB random buffer, median of ${runs} runs for speeds\n`);
console.log(
  "| chunking | cut MB/s | cut+BLAKE3 MB/s | chunks per GiB | manifest per GiB | 1-byte insert | 10% in 1 MiB patches | 10% in 64 KiB patches |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
for (const { name, chunker } of candidates) {
  const cutSpeeds: number[] = [];
  const hashSpeeds: number[] = [];
  let count = 0;
  for (let run = 0; run < runs; run++) {
    let started = performance.now();
    count = cut(chunker, original).length;
    cutSpeeds.push(mbPerSecond(size, (performance.now() - started) / 1000));
    started = performance.now();
    chunkHashes(chunker, original);
    hashSpeeds.push(mbPerSecond(size, (performance.now() - started) / 1000));
  }
  const perGib = (count * 1024 * MIB) / size;
  console.log(
    [
      name,
      median(cutSpeeds).toFixed(0),
      median(hashSpeeds).toFixed(0),
      perGib.toFixed(0),
      `${((perGib * MANIFEST_BYTES_PER_CHUNK) / 1e6).toFixed(2)} MB`,
      percent(fetchedShare(chunker, original, inserted)),
      percent(fetchedShare(chunker, original, patchedLarge)),
      percent(fetchedShare(chunker, original, patchedSmall)),
    ]
      .join(" | ")
      .replace(/^/, "| ")
      .concat(" |"),
  );
}
