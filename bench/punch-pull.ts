/**
 * A pull across the NAT lab (bench/nat-lab.sh) with its routers' public links shaped, by the path
 * the bytes take: punched (two cone NATs, the pull starts on the relay and moves to a hole punched
 * for QUIC), relay (the client behind a symmetric NAT: no punch gets through) and direct (the host
 * behind a full-cone NAT, its link naming the NAT's public address). Each run is a fresh client
 * (its own TELEPORT_HOME, an empty destination), the copy checked against the payload. Prints one
 * JSON line per run, then the medians per path and their ratios to direct.
 *
 *   node dist/bench/punch-pull.js [--runs 5] [--mib 64] [--delay-ms 12.5] [--rate-mbit 100]
 *
 * delay is each router link's, each way: the host-client RTT is 4x it (50 ms by default), on the
 * relay path as on the others (the relay sits on the public network between the two routers).
 */
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type RunningCli, spawnCli } from "../test/helpers/cli.js";
import { waitFor } from "../test/helpers/context.js";
import { type NatKind, type NatLab, whyNoNatLab, withNatLab } from "../test/helpers/nat-lab.js";
import { MiB, writeRandomFile } from "../test/helpers/tree.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    mib: { type: "string", default: "64" },
    "delay-ms": { type: "string", default: "12.5" },
    "rate-mbit": { type: "string", default: "100" },
  },
});
const RUNS = Number(values.runs);
const BYTES = Number(values.mib) * MiB;
const SHAPE = { delayMs: Number(values["delay-ms"]), rateMbit: Number(values["rate-mbit"]) };

type PathName = "punched" | "relay" | "direct" | "direct-quic";
/** direct-quic (`--transport quic` to the full-cone host) tells QUIC's own rate from the punch's. */
const PATHS: Record<PathName, { hostNat: NatKind; clientNat: NatKind; pullArgs: string[] }> = {
  punched: { hostNat: "cone", clientNat: "cone", pullArgs: [] },
  relay: { hostNat: "cone", clientNat: "symmetric", pullArgs: [] },
  direct: { hostNat: "full-cone", clientNat: "cone", pullArgs: [] },
  "direct-quic": { hostNat: "full-cone", clientNat: "cone", pullArgs: ["--transport", "quic"] },
};

interface Run {
  path: PathName;
  run: number;
  /** From starting `teleport pull` to its exit: connecting (and the relay's head start) included. */
  seconds: number;
  mbitPerSecond: number;
  /** The pull's own `seconds` (--json): from connected to done. */
  transferMbitPerSecond: number;
  bytesByPath: Record<string, number>;
  same: boolean;
}

function firstLine(running: RunningCli): Promise<string> {
  return waitFor(
    () => (running.stdout().includes("\n") ? running.stdout().split("\n")[0]?.trim() : undefined),
    {
      what: "the first line",
      timeoutMs: 30_000,
    },
  );
}

async function servers(
  lab: NatLab,
  path: PathName,
  scratch: string,
  share: string,
): Promise<{ link: string; stop(): void }> {
  const relay = spawnCli(
    ["relay", "--port", "0"],
    { TELEPORT_HOME: join(scratch, "relay-home") },
    lab.wrapper("relay"),
  );
  const relayAddress = await firstLine(relay);
  const linkFile = join(scratch, "link");
  const advertise = path.startsWith("direct") ? ["--advertise", lab.addresses["host-router"]] : [];
  const host = spawnCli(
    ["host", share, "--port", "0", "--relay", relayAddress, "--link-file", linkFile, ...advertise],
    { TELEPORT_HOME: join(scratch, "host-home") },
    lab.wrapper("host"),
  );
  const link = await waitFor(
    async () => (await readFile(linkFile, "utf8").catch(() => "")).split("\n")[0] || undefined,
    { what: "the host's link", timeoutMs: 30_000 },
  );
  return {
    link,
    stop() {
      relay.process.kill("SIGKILL");
      host.process.kill("SIGKILL");
    },
  };
}

async function onePull(
  lab: NatLab,
  path: PathName,
  link: string,
  scratch: string,
  payload: Buffer,
): Promise<Omit<Run, "path" | "run">> {
  const client = join(scratch, "client");
  await rm(client, { recursive: true, force: true });
  await mkdir(client);
  const started = performance.now();
  const pull = spawnCli(
    ["pull", link, join(client, "dest"), "--json", ...PATHS[path].pullArgs],
    { TELEPORT_HOME: join(client, "home") },
    lab.wrapper("client"),
  );
  const result = await pull.result;
  const seconds = (performance.now() - started) / 1000;
  if (result.code !== 0) throw new Error(`pull failed: ${result.stderr}`);
  const summary = JSON.parse(result.stdout) as {
    seconds: number;
    bytesByPath: Record<string, number>;
  };
  const same = Buffer.compare(payload, await readFile(join(client, "dest", "payload.bin"))) === 0;
  return {
    seconds,
    mbitPerSecond: (BYTES * 8) / seconds / 1e6,
    transferMbitPerSecond: (BYTES * 8) / summary.seconds / 1e6,
    bytesByPath: summary.bytesByPath,
    same,
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

async function main(): Promise<void> {
  const why = whyNoNatLab({ shaped: true });
  if (why !== null) {
    console.log(JSON.stringify({ skipped: why }));
    return;
  }
  const scratch = await mkdtemp("/dev/shm/punch-bench-");
  try {
    const share = join(scratch, "share");
    await mkdir(share);
    await writeRandomFile(join(share, "payload.bin"), BYTES);
    const payload = await readFile(join(share, "payload.bin"));
    const runs: Run[] = [];
    for (const path of Object.keys(PATHS) as PathName[]) {
      const { hostNat, clientNat } = PATHS[path];
      await withNatLab({ hostNat, clientNat, shape: SHAPE }, async (lab) => {
        const serving = await servers(lab, path, join(scratch, path), share);
        try {
          for (let run = 1; run <= RUNS; run++) {
            const measured = {
              path,
              run,
              ...(await onePull(lab, path, serving.link, join(scratch, path), payload)),
            };
            console.log(JSON.stringify(measured));
            runs.push(measured);
          }
        } finally {
          serving.stop();
        }
      });
    }
    const medianOf = (rate: (run: Run) => number) =>
      Object.fromEntries(
        (Object.keys(PATHS) as PathName[]).map((path) => [
          path,
          median(runs.filter((r) => r.path === path).map(rate)),
        ]),
      ) as Record<PathName, number>;
    const medians = medianOf((run) => run.mbitPerSecond);
    const transfer = medianOf((run) => run.transferMbitPerSecond);
    console.log(
      JSON.stringify({
        link: `${SHAPE.rateMbit} Mbit/s, ${4 * SHAPE.delayMs} ms RTT host-client`,
        mib: BYTES / MiB,
        runs: RUNS,
        medianMbitPerSecond: medians,
        punchedOverDirect: medians.punched / medians.direct,
        relayOverDirect: medians.relay / medians.direct,
        medianTransferMbitPerSecond: transfer,
        transferPunchedOverDirect: transfer.punched / transfer.direct,
        transferRelayOverDirect: transfer.relay / transfer.direct,
        allIdentical: runs.every((r) => r.same),
      }),
    );
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

await main();
