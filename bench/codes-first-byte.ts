/**
 * Join codes: the time from starting `teleport receive CODE` to the first byte of the share in
 * DEST (a one-file share of 1 KiB, so first byte and last are one), through a `teleport relay`'s
 * mailbox and over the LAN path (mDNS, loopback here), against `teleport pull LINK` of the same
 * sender's link in the same run: the difference is what the code costs (discovery, SPAKE2 and
 * key confirmation through the mailbox). Loopback only: the round trips it adds are counted in
 * the exchange's design (two through the mailbox), not measured on an emulated WAN here.
 *
 *   npm run build && node dist/bench/codes-first-byte.js [--runs 5]
 *
 * Prints a line per figure and one JSON object at the end.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../src/cli/bin.js", import.meta.url));
const runs = Number(process.argv[process.argv.indexOf("--runs") + 1] ?? 5) || 5;

interface Running {
  child: ChildProcess;
  stdout(): string;
  done: Promise<number | null>;
}

function start(args: string[], home: string): Running {
  const child = spawn(process.execPath, [CLI, ...args], {
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
async function timeToFile(args: string[], home: string, file: string, size: number): Promise<number> {
  const t0 = performance.now();
  const running = start(args, home);
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

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), "teleport-codes-bench-"));
  const payload = Buffer.alloc(1024, 7);
  const source = join(base, "one.bin");
  writeFileSync(source, payload);
  const relay = start(["relay", "--bind", "127.0.0.1", "--port", "0"], join(base, "relay-home"));
  const relayAddress = await firstLine(relay);
  const figures: Record<string, number[]> = { pull: [], receiveRelay: [], receiveLan: [] };
  try {
    for (let run = 0; run < runs; run += 1) {
      // The direct pull of a link: the baseline every receive includes.
      const host = start(
        ["host", source, "--bind", "127.0.0.1", "--once", "--no-qr"],
        join(base, "host-home"),
      );
      const link = await firstLine(host);
      figures.pull?.push(
        await timeToFile(
          ["pull", link, join(base, `pull-${run}`)],
          join(base, `c-${run}`),
          join(base, `pull-${run}`, "one.bin"),
          payload.length,
        ),
      );
      await host.done;
      for (const [name, via] of [
        ["receiveRelay", ["--relay", relayAddress, "--no-lan"]],
        ["receiveLan", []],
      ] as const) {
        const sendVia = name === "receiveRelay" ? ["--relay", relayAddress, "--no-lan"] : [];
        const send = start(["send", source, ...sendVia], join(base, "send-home"));
        const code = await firstLine(send);
        const dest = join(base, `${name}-${run}`);
        figures[name]?.push(
          await timeToFile(
            ["receive", code, dest, ...via],
            join(base, `r-${name}-${run}`),
            join(dest, "one.bin"),
            payload.length,
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
  const result = Object.fromEntries(
    Object.entries(figures).map(([name, values]) => [name, { medianMs: median(values), runs: values }]),
  );
  const pull = median(figures.pull ?? []);
  for (const [name, { medianMs }] of Object.entries(result))
    process.stdout.write(
      `${name.padEnd(13)} median ${medianMs.toFixed(0)} ms (${(medianMs - pull).toFixed(0)} ms over pull)\n`,
    );
  process.stdout.write(`${JSON.stringify({ bench: "codes-first-byte", runs, ...result })}\n`);
}

await main();
