// teleport's own figures beside the engines, same machine, same run: `teleport pull` of one
// random file over TLS/TCP and over QUIC on loopback, from a `teleport host` started here. Needs
// the build (npx tsc -p tsconfig.json); installs nothing.
//
//   node bench/engines/teleport.mjs          # ENGINES_RUNS (5) runs per transport, ENGINES_BYTES
//
// A pull does more than an engine's bulk stream: it hashes every chunk (BLAKE3), verifies it and
// writes it to disk (tmpfs here). Start-up is the whole pull of a 6-byte file: process start,
// connection, handshake, secret proof, manifest, one chunk, exit: an upper bound on process start
// to first connection.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { GIB, MIB, processCpuSeconds, report, runCount, summarise, transferBytes } from "./common.mjs";

const repoRoot = process.env.TELEPORT_REPO ?? join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const cli = join(repoRoot, "dist", "src", "cli", "bin.js");
if (!existsSync(cli)) throw new Error(`teleport is not built in ${repoRoot}: npx tsc -p tsconfig.json`);

const scratch = mkdtempSync("/dev/shm/engines-teleport-");
try {
  await measure();
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

async function measure() {
  const share = join(scratch, "share");
  mkdirSync(share);
  writePayload(join(share, "payload.bin"), transferBytes());
  writeFileSync(join(share, "tiny.txt"), "hello\n");
  const relay = spawn(process.execPath, [cli, "relay", "--port", "0", "--bind", "127.0.0.1"], {
    stdio: ["ignore", "pipe", "ignore"],
    env: { ...process.env, TELEPORT_HOME: join(scratch, "relay-home") },
  });
  const host = startHost(share, join(scratch, "link"), "host-home", []);
  // QUIC off: a host that also takes QUIC would be punched to at once on loopback, moving the pull
  // off the relay; this one can only be reached through it.
  const relayed = startHost(share, join(scratch, "relayed-link"), "relayed-home", [
    "--no-quic",
    "--relay",
    await firstLine(relay),
  ]);
  try {
    const link = await waitForLink(join(scratch, "link"));
    const modes = [
      { mode: "pull --transport tcp", link, transport: "tcp", hostPid: host.pid },
      { mode: "pull --transport quic", link, transport: "quic", hostPid: host.pid },
      // The host's own port closed to the client: the pull goes through `teleport relay`.
      {
        mode: "pull via teleport relay",
        link: await unreachableDirect(await waitForLink(join(scratch, "relayed-link"))),
        transport: "auto",
        hostPid: relayed.pid,
      },
    ];
    for (const { mode, link: modeLink, transport, hostPid } of modes) {
      const runs = [];
      for (let run = 0; run <= runCount(); run++) {
        const figures = pullOnce(modeLink, transport, [hostPid, relay.pid], run);
        const expected = mode.includes("relay") ? "relay" : "direct";
        if (figures.path !== expected)
          throw new Error(`${mode}: the pull went by ${figures.path}, not ${expected}`);
        console.error(`engines: teleport ${mode} run ${run}: ${figures.mbPerSecond.toFixed(1)} MB/s`);
        if (run > 0) runs.push(figures); // run 0 warms up (page cache, the host's index)
      }
      report(
        "teleport",
        mode,
        runs,
        mode.includes("relay") ? { relayCpuPerGib: summarise(runs, "relayCpuPerGib", 2) } : {},
      );
    }
  } finally {
    host.kill("SIGTERM");
    relayed.kill("SIGTERM");
    relay.kill("SIGTERM");
  }
}

function startHost(share, linkFile, home, extraArgs) {
  return spawn(
    process.execPath,
    [cli, "host", share, "--port", "0", "--bind", "127.0.0.1", "--link-file", linkFile, ...extraArgs],
    { stdio: "ignore", env: { ...process.env, TELEPORT_HOME: join(scratch, home) } },
  );
}

function firstLine(child) {
  return new Promise((resolve, reject) => {
    let text = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      text += chunk;
      if (text.includes("\n")) resolve(text.split("\n")[0].trim());
    });
    child.on("exit", () => reject(new Error("teleport relay exited before printing its address")));
  });
}

/** The link with its direct port swapped for one nobody listens on (bound, then closed). */
async function unreachableDirect(link) {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  const url = new URL(link);
  url.port = String(port);
  return url.toString();
}

function writePayload(path, bytes) {
  const block = randomBytes(MIB);
  const parts = [];
  for (let written = 0; written < bytes; written += MIB)
    parts.push(block.subarray(0, Math.min(MIB, bytes - written)));
  // Distinct chunks: a repeated block would be deduplicated and never cross the wire.
  writeFileSync(path, Buffer.concat(parts.map((part, index) => xorIndex(part, index))));
}

function xorIndex(block, index) {
  const copy = Buffer.from(block);
  copy.writeUInt32LE(index, 0);
  for (let offset = 4096; offset < copy.length; offset += 4096) copy.writeUInt32LE(index ^ offset, offset);
  return copy;
}

async function waitForLink(linkFile) {
  for (let tries = 0; tries < 1200; tries++) {
    if (existsSync(linkFile)) {
      const link = readFileSync(linkFile, "utf8").split("\n")[0].trim();
      if (link !== "") return link;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("teleport host wrote no link in 120 s");
}

function pullOnce(link, transport, [hostPid, relayPid], run) {
  const home = join(scratch, `home-${transport}-${run}`);
  const dest = join(scratch, `dest-${transport}-${run}`);
  const env = { ...process.env, TELEPORT_HOME: home };
  const tinyStarted = performance.now();
  execFileSync(
    process.execPath,
    [cli, "pull", link, `${dest}-tiny`, "--path", "tiny.txt", "--transport", transport],
    {
      env,
      stdio: "ignore",
    },
  );
  const startupMs = performance.now() - tinyStarted;
  rmSync(`${dest}-tiny`, { recursive: true, force: true });
  const hostCpuBefore = processCpuSeconds(hostPid);
  const relayCpuBefore = processCpuSeconds(relayPid);
  const stdout = execFileSync(
    process.execPath,
    [cli, "pull", link, dest, "--json", "--transport", transport, "--path", "payload.bin"],
    { env, encoding: "utf8" },
  );
  const hostCpu = processCpuSeconds(hostPid) - hostCpuBefore;
  const relayCpu = processCpuSeconds(relayPid) - relayCpuBefore;
  const summary = JSON.parse(stdout.trim().split("\n").at(-1));
  if (summary.bytesFromNetwork !== transferBytes())
    throw new Error(`pulled ${summary.bytesFromNetwork} bytes from the network, not ${transferBytes()}`);
  rmSync(home, { recursive: true, force: true });
  rmSync(dest, { recursive: true, force: true });
  const gib = summary.bytes / GIB;
  return {
    mbPerSecond: summary.bytes / 1e6 / summary.seconds,
    startupMs,
    connectMs: Number.NaN,
    clientCpuPerGib: summary.cpuSeconds / gib,
    serverCpuPerGib: hostCpu / gib,
    relayCpuPerGib: relayCpu / gib,
    path: summary.path,
  };
}
