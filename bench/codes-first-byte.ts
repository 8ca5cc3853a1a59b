/**
 * Join codes: the time from starting `teleport receive CODE` to the first byte of the share in
 * DEST (a one-file share of 1 KiB, so first byte and last are one), through a `teleport relay`'s
 * mailbox and over the LAN path (mDNS, loopback here), against `teleport pull LINK` of the same
 * sender's link in the same run: the difference is what the code costs (discovery, SPAKE2 and
 * key confirmation through the mailbox). With --nat-lab, across the NAT lab instead
 * (test/helpers/nat-lab.ts: the sender behind a cone NAT, the receiver behind another, the
 * routers' public links shaped to --delay-ms each way, so the sender-receiver RTT is 4x that and
 * each side's RTT to the relay 2x): the relay's mailbox only, as mDNS does not cross NATs.
 *
 *   npm run build && node dist/bench/codes-first-byte.js [--runs 5] [--nat-lab [--delay-ms 12]]
 *
 * Prints a line per figure and one JSON object at the end.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type NatLab, type NatLabRole, whyNoNatLab, withNatLab } from "../test/helpers/nat-lab.js";

const CLI = fileURLToPath(new URL("../src/cli/bin.js", import.meta.url));
function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at === -1 ? fallback : Number(process.argv[at + 1]) || fallback;
}
const runs = flag("--runs", 5);
const delayMs = flag("--delay-ms", 12);

/** Where each side runs: this namespace (loopback), or the NAT lab's. */
interface Sites {
  wrapper(role: NatLabRole): string[];
  relayBind: string;
  hostBind: string[];
  lan: boolean;
}

const LOOPBACK: Sites = {
  wrapper: () => [],
  relayBind: "127.0.0.1",
  hostBind: ["--bind", "127.0.0.1"],
  lan: true,
};

function labSites(lab: NatLab): Sites {
  return { wrapper: (role) => lab.wrapper(role), relayBind: lab.addresses.relay, hostBind: [], lan: false };
}

interface Running {
  child: ChildProcess;
  stdout(): string;
  done: Promise<number | null>;
}

function start(args: string[], home: string, wrapper: string[] = []): Running {
  const [command, ...rest] = [...wrapper, process.execPath, CLI, ...args];
  const child = spawn(command as string, rest, {
    env: { ...process.env, TELEPORT_HOME: home },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (data: Buffer) => {
    out += data.toString();
  });
  child.stderr?.resume();
  return { child, stdout: () => out, done: new Promise((resolve) => child.once("close", resolve)) };
}

async function firstLine(running: Running): Promise<string> {
  for (;;) {
    const line = /^(.+)\n/.exec(running.stdout())?.[1];
    if (line !== undefined) return line;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Milliseconds from spawning `args` until `file` exists with `size` bytes. */
async function timeToFile(
  args: string[],
  home: string,
  file: string,
  size: number,
  wrapper: string[] = [],
): Promise<number> {
  const t0 = performance.now();
  const running = start(args, home, wrapper);
  for (;;) {
    const seen = (() => {
      try {
        return statSync(file).size === size;
      } catch {
        return false;
      }
    })();
    if (seen) break;
    if (running.child.exitCode !== null)
      throw new Error(`teleport ${args.join(" ")} exited ${running.child.exitCode}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  const ms = performance.now() - t0;
  await running.done;
  return ms;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** Medians of `runs` rounds of: pull LINK, receive through the relay, and (on a LAN) by mDNS. */
async function measure(sites: Sites): Promise<Record<string, number[]>> {
  const base = mkdtempSync(join(tmpdir(), "teleport-codes-bench-"));
  const payload = Buffer.alloc(1024, 7);
  const source = join(base, "one.bin");
  writeFileSync(source, payload);
  const relay = start(
    ["relay", "--bind", sites.relayBind, "--port", "0"],
    join(base, "relay-home"),
    sites.wrapper("relay"),
  );
  const relayAddress = await firstLine(relay);
  const figures: Record<string, number[]> = {
    pull: [],
    receiveRelay: [],
    ...(sites.lan ? { receiveLan: [] } : {}),
  };
  const ways: Array<[string, string[]]> = [["receiveRelay", ["--relay", relayAddress, "--no-lan"]]];
  if (sites.lan) ways.push(["receiveLan", []]);
  try {
    for (let run = 0; run < runs; run += 1) {
      // The pull of a link (naming the relay, as send's does): the baseline every receive includes.
      const host = start(
        ["host", source, ...sites.hostBind, "--relay", relayAddress, "--once", "--no-qr"],
        join(base, "host-home"),
        sites.wrapper("host"),
      );
      const link = await firstLine(host);
      const pulled = join(base, `pull-${run}`);
      figures.pull?.push(
        await timeToFile(
          ["pull", link, pulled],
          join(base, `c-${run}`),
          join(pulled, "one.bin"),
          1024,
          sites.wrapper("client"),
        ),
      );
      await host.done;
      for (const [name, via] of ways) {
        const send = start(["send", source, ...via], join(base, "send-home"), sites.wrapper("host"));
        const code = await firstLine(send);
        const dest = join(base, `${name}-${run}`);
        const home = join(base, `r-${name}-${run}`);
        figures[name]?.push(
          await timeToFile(
            ["receive", code, dest, ...via],
            home,
            join(dest, "one.bin"),
            1024,
            sites.wrapper("client"),
          ),
        );
        await send.done;
      }
    }
  } finally {
    relay.child.kill("SIGTERM");
    await relay.done;
    rmSync(base, { recursive: true, force: true });
  }
  return figures;
}

async function main(): Promise<void> {
  let where = "loopback";
  let figures: Record<string, number[]>;
  if (process.argv.includes("--nat-lab")) {
    const why = whyNoNatLab({ shaped: true });
    if (why !== null) throw new Error(`--nat-lab: ${why}`);
    where = `NAT lab, ${delayMs} ms each way on each router's public link (sender-receiver RTT ${4 * delayMs} ms)`;
    figures = await withNatLab(
      { hostNat: "cone", clientNat: "cone", shape: { delayMs, rateMbit: 100 } },
      (lab) => measure(labSites(lab)),
    );
  } else {
    figures = await measure(LOOPBACK);
  }
  const result = Object.fromEntries(
    Object.entries(figures).map(([name, values]) => [name, { medianMs: median(values), runs: values }]),
  );
  const pull = median(figures.pull ?? []);
  process.stdout.write(`${where}\n`);
  for (const [name, { medianMs }] of Object.entries(result))
    process.stdout.write(
      `${name.padEnd(13)} median ${medianMs.toFixed(0)} ms (${(medianMs - pull).toFixed(0)} ms over pull)\n`,
    );
  process.stdout.write(`${JSON.stringify({ bench: "codes-first-byte", where, runs, ...result })}\n`);
}

await main();
