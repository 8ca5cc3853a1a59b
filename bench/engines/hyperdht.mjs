// Measures Holepunch's hyperdht (the engine under hyperswarm) on loopback, against a PRIVATE
// testnet started here: nothing reaches the internet (its default bootstrap nodes are never
// used: every node is given the testnet's address). Installs hyperdht into a scratch folder
// (ENGINES_DIR, default /dev/shm/engines-hyper), never into this project.
//
//   node bench/engines/hyperdht.mjs            # direct and relayed, ENGINES_RUNS (5) runs each
//
// Modes: "direct" (client dials the server's public key; UDX over UDP, Noise secret stream) and
// "relay" (both ends told to go through a third node running blind-relay, hole punching off),
// and "hyperswarm" (both join a topic; the client finds the server through the DHT, then as direct).
// Prints one JSON line per mode (see common.mjs report()), and the install's cost.
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { join } from "node:path";
import {
  argument,
  bothExited,
  cpuSeconds,
  installEngine,
  processCpuSeconds,
  report,
  runCount,
  runFigures,
  startRole,
  summarise,
  transferBytes,
  writeBulk,
} from "./common.mjs";

const PACKAGES = ["hyperdht@6.34.0", "hyperswarm@4.17.2", "blind-relay@1.6.1"];
const LOOPBACK = "127.0.0.1";

const roles = { bootstrap, relay, server, client, swarmServer, swarmClient };
const role = argument("role");
if (role === null) await orchestrate();
else await roles[role]();

async function orchestrate() {
  const dir = process.env.ENGINES_DIR ?? "/dev/shm/engines-hyper";
  const install = installEngine(dir, PACKAGES);
  console.log(JSON.stringify({ engine: "hyperdht", install }));
  const script = join(dir, "hyperdht.mjs");
  const testnet = startRole(script, "bootstrap");
  const { bootstrapPort } = await testnet.line("bootstrapPort");
  const relayNode = startRole(script, "relay", ["--bootstrap", String(bootstrapPort)]);
  const { relayKey } = await relayNode.line("relayKey");
  try {
    for (const mode of modes()) {
      const runs = [];
      const failures = [];
      for (let run = 0; run <= runCount(); run++) {
        const relayCpuBefore = processCpuSeconds(relayNode.child.pid);
        const attempt = () =>
          mode === "hyperswarm"
            ? swarmRun(script, bootstrapPort)
            : oneRun(script, bootstrapPort, mode === "relay" ? relayKey : null);
        const figures = await withRetries(attempt, (error) =>
          failures.push(`${mode} run ${run}: ${error.message}`),
        );
        if (figures === null) continue; // four failures in a row: the run is left out, its failures reported
        const relayCpu = processCpuSeconds(relayNode.child.pid) - relayCpuBefore;
        figures.relayCpuPerGib = relayCpu / (transferBytes() / 2 ** 30);
        console.error(`engines: hyperdht ${mode} run ${run}: ${figures.mbPerSecond.toFixed(1)} MB/s`);
        if (run > 0) runs.push(figures); // run 0 warms up
      }
      if (mode === "relay" && runs.some((figures) => figures.relayCpuPerGib < 0.05))
        throw new Error("the relay node carried nothing: the relayed runs went direct");
      report("hyperdht", mode, runs, {
        relayCpuPerGib: mode === "relay" ? summarise(runs, "relayCpuPerGib", 2) : null,
        failures,
      });
    }
  } finally {
    relayNode.stop();
    testnet.stop();
  }
}

/** ENGINES_MODES (comma-separated) or all three. */
function modes() {
  return (process.env.ENGINES_MODES ?? "direct,relay,hyperswarm").split(",");
}

/**
 * A run that failed (a connection that timed out, a relay channel closed) is tried again, up to 4
 * times; null after the fourth failure.
 */
async function withRetries(attempt, onFailure) {
  for (let tries = 1; tries <= 4; tries++) {
    try {
      return await attempt();
    } catch (error) {
      onFailure(error);
    }
  }
  return null;
}

async function oneRun(script, bootstrapPort, relayKey) {
  const common = ["--bootstrap", String(bootstrapPort), ...(relayKey === null ? [] : ["--relay", relayKey])];
  const serverRole = startRole(script, "server", common);
  const { publicKey } = await serverRole.line("publicKey");
  const clientRole = startRole(script, "client", [...common, "--key", publicKey]);
  const [clientReport, serverReport] = await bothExited(clientRole, serverRole);
  return runFigures(clientReport, serverReport);
}

async function swarmRun(script, bootstrapPort) {
  const common = ["--bootstrap", String(bootstrapPort), "--topic", randomBytes(32).toString("hex")];
  const serverRole = startRole(script, "swarmServer", common);
  await serverRole.line("announced");
  const clientRole = startRole(script, "swarmClient", common);
  const [clientReport, serverReport] = await bothExited(clientRole, serverRole);
  return runFigures(clientReport, serverReport);
}

function loadDht() {
  const require = createRequire(import.meta.url);
  return require("hyperdht");
}

/** A node of the private testnet, as hyperdht's own tests make them on one machine. */
function createNode() {
  const DHT = loadDht();
  return new DHT({ bootstrap: bootstrapNodes(), host: LOOPBACK, quickFirewall: false, ephemeral: true });
}

function bootstrapNodes() {
  return [{ host: LOOPBACK, port: Number(argument("bootstrap")) }];
}

async function bootstrap() {
  const require = createRequire(import.meta.url);
  const createTestnet = require("hyperdht/testnet");
  const testnet = await createTestnet(3, { host: LOOPBACK });
  console.log(JSON.stringify({ bootstrapPort: testnet.bootstrap[0].port }));
  process.once("SIGTERM", () => testnet.destroy().then(() => process.exit(0)));
}

async function relay() {
  const require = createRequire(import.meta.url);
  const { Server: RelayServer } = require("blind-relay");
  const node = createNode();
  const relayServer = new RelayServer({
    createStream: (options) => node.createRawStream({ ...options, framed: true }),
  });
  const server = node.createServer((socket) => {
    relayServer.accept(socket, { id: socket.remotePublicKey }).on("error", () => {});
  });
  await server.listen();
  console.log(JSON.stringify({ relayKey: server.publicKey.toString("hex") }));
  process.once("SIGTERM", () => node.destroy().then(() => process.exit(0)));
}

function relayOptions() {
  const relayKey = argument("relay");
  if (relayKey === null) return {};
  // As hyperdht's own relay tests force it: no hole punch, no LAN shortcut, both ends relayed.
  return { holepunch: false, shareLocalAddress: false, relayThrough: Buffer.from(relayKey, "hex") };
}

async function server() {
  const DHT = loadDht();
  const node = createNode();
  const dhtServer = node.createServer(relayOptions(), (socket) => sendBulk(socket, () => node.destroy()));
  await dhtServer.listen(DHT.keyPair());
  console.log(JSON.stringify({ publicKey: dhtServer.publicKey.toString("hex") }));
}

/** The server's side of a run: the bulk bytes, then its CPU seconds once the client closed. */
function sendBulk(socket, destroy) {
  const cpuAtOpen = cpuSeconds();
  socket.on("error", () => {});
  socket.on("close", async () => {
    console.log(JSON.stringify({ cpuSeconds: cpuSeconds() - cpuAtOpen }));
    await destroy();
    process.exit(0);
  });
  writeBulk(socket, randomBytes(64 * 1024), transferBytes()).then(() => socket.end());
}

async function swarmServer() {
  const require = createRequire(import.meta.url);
  const Hyperswarm = require("hyperswarm");
  const swarm = new Hyperswarm({ dht: createNode() });
  swarm.on("connection", (socket) => sendBulk(socket, () => swarm.destroy()));
  await swarm.join(Buffer.from(argument("topic"), "hex"), { server: true, client: false }).flushed();
  console.log(JSON.stringify({ announced: true }));
}

async function swarmClient() {
  const require = createRequire(import.meta.url);
  const Hyperswarm = require("hyperswarm");
  const swarm = new Hyperswarm({ dht: createNode() });
  const dialledAt = performance.now();
  const socket = await new Promise((resolve) => {
    swarm.once("connection", resolve);
    swarm.join(Buffer.from(argument("topic"), "hex"), { server: false, client: true });
  });
  await receiveBulk(socket, dialledAt, performance.now());
  await swarm.destroy();
  process.exit(0);
}

async function client() {
  const node = createNode();
  const dialledAt = performance.now();
  const { relayThrough } = relayOptions();
  const socket = node.connect(Buffer.from(argument("key"), "hex"), {
    ...(relayThrough === undefined ? {} : { relayThrough, localConnection: false }),
  });
  const openedAt = await new Promise((resolve, reject) => {
    socket.once("open", () => resolve(performance.now()));
    socket.once("error", reject);
  });
  await receiveBulk(socket, dialledAt, openedAt);
  await node.destroy();
  process.exit(0);
}

/** The client's side of a run: counts the bulk bytes, prints its figures. */
async function receiveBulk(socket, dialledAt, openedAt) {
  const total = transferBytes();
  const cpuAtOpen = cpuSeconds();
  let received = 0;
  await new Promise((resolve, reject) => {
    socket.on("data", (data) => {
      received += data.length;
      if (received >= total) resolve();
    });
    socket.on("error", reject);
  });
  const finishedAt = performance.now();
  const cpu = cpuSeconds() - cpuAtOpen;
  socket.end();
  console.log(
    JSON.stringify({
      bytes: received,
      transferSeconds: (finishedAt - openedAt) / 1000,
      startupMs: openedAt,
      connectMs: openedAt - dialledAt,
      cpuSeconds: cpu,
    }),
  );
}
