/**
 * The payloads of the WAN benchmarks, and how big a run's payload is. Throughput is the figure,
 * not time: a single loss-bound stream moves ~9 Mbit/s where eight move ~75, so one payload
 * cannot suit every tool. Each tool's warm-up picks, from a ladder of random files, the smallest
 * that lasts RUN_SECONDS at the rate the warm-up saw (sizing.ts).
 */
import { basename, join } from "node:path";
import { type LinkSettings, tcpGoodputMbit } from "../../lib/netsim.js";
import { ensureRandomFile, type Payload } from "../../lib/payload.js";

export const MiB = 1024 * 1024;
/** The ladder's rungs, in MiB; why these sizes: docs/decisions.md, "WAN payload ladder". */
const PAYLOAD_MIB = [16, 32, 64, 128, 256, 512] as const;
/** A timed run should last at least this long at the rate its warm-up measured. */
export const RUN_SECONDS = 5;

/** A file or folder in the folder the WAN servers share, by its name there. */
export interface SharedPayload {
  name: string;
  payload: Payload;
}

export interface PayloadLadder {
  /** The folder every server in host b shares. */
  dir: string;
  /** Smallest first. */
  files: readonly SharedPayload[];
}

/** Where every WAN payload lives: the ladder, and the trees of the other WAN benchmarks. */
export function wanPayloadDir(workDir: string): string {
  return join(workDir, "wan-payloads");
}

const ladders = new Map<string, Promise<PayloadLadder>>();

/** All rungs, made once per work dir (1008 MiB) and hashed once per process. */
export function ensurePayloadLadder(workDir: string): Promise<PayloadLadder> {
  const dir = wanPayloadDir(workDir);
  let ladder = ladders.get(dir);
  if (ladder === undefined) {
    ladder = (async () => {
      const files: SharedPayload[] = [];
      for (const mib of PAYLOAD_MIB) {
        const path = join(dir, `random-${mib}MiB.bin`);
        files.push({ name: basename(path), payload: await ensureRandomFile(path, mib * MiB) });
      }
      return { dir, files };
    })();
    ladder.catch(() => ladders.delete(dir));
    ladders.set(dir, ladder);
  }
  return ladder;
}

/** The smallest rung that lasts RUN_SECONDS at `mbit`, or the largest. */
export function rungFor(ladder: PayloadLadder, mbit: number): SharedPayload {
  const fitting = ladder.files.find((file) => (file.payload.bytes * 8) / (mbit * 1e6) >= RUN_SECONDS);
  const largest = ladder.files.at(-1);
  if (largest === undefined) throw new Error("empty payload ladder");
  return fitting ?? largest;
}

/** The rung above `file`, or null at the top. */
export function rungAbove(ladder: PayloadLadder, file: SharedPayload): SharedPayload | null {
  return ladder.files[ladder.files.indexOf(file) + 1] ?? null;
}

/**
 * What one TCP stream gets: the link's goodput, or under loss with reno what Mathis et al. give,
 * MSS/RTT x 1.22/sqrt(p). Every tool's first warm-up is sized for this: a warm-up that ends too
 * soon grows the payload, while one sized for N streams' worth took minutes for many streams
 * that got no more than fewer did.
 */
export function singleStreamMbit(settings: LinkSettings): number {
  const goodput = tcpGoodputMbit(settings);
  // BBR does not back off on random loss; reno (and cubic) do.
  if (settings.loss === 0 || settings.congestionControl !== "reno") return goodput;
  const rttSeconds = (2 * settings.delayMs) / 1000;
  const perStream = (((1448 * 8) / rttSeconds) * 1.22) / Math.sqrt(settings.loss) / 1e6;
  return Math.min(goodput, perStream);
}
