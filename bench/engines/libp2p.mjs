// Measures js-libp2p on loopback: TCP + Noise + Yamux direct, and through a circuit-relay-v2
// relay node started here (no public relay, no bootstrap list: nothing reaches the internet).
// Installs libp2p into a scratch folder (ENGINES_DIR, default /dev/shm/engines-libp2p), never
// into this project.
//
//   node bench/engines/libp2p.mjs            # direct and relayed, ENGINES_RUNS (5) runs each
//
// Modes: "direct" (client dials the server's TCP multiaddr) and "relay" (the server reserves a
// slot on the relay, unlimited, and the client dials its /p2p-circuit address). DCUtR would
// upgrade a relayed connection to a direct one; it is left out so the relayed figure is the relay's.
// Prints one JSON line per mode (see common.mjs report()), and the install's cost.
import { randomBytes } from "node:crypto";
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
} from "./common.mjs";

const PACKAGES = [
  "libp2p@3.3.11",
  "@libp2p/tcp@11.0.28",
  "@chainsafe/libp2p-noise@17.0.0",
  "@chainsafe/libp2p-yamux@8.0.1",
  "@libp2p/circuit-relay-v2@4.2.13",
  "@libp2p/identify@4.1.14",
  "@libp2p/dcutr@3.0.28",
  "@libp2p/autonat@3.0.28",
  "@libp2p/upnp-nat@4.0.28",
  "@multiformats/multiaddr@13.0.3",
];
const PROTOCOL = "/teleport-bench/bulk/1";

// libp2p 3 calls Promise.withResolvers (Node 22+) and declares nanoid/p-retry that need Node 22:
// it does not run on Node 20 as installed. To measure it at all, the roles add that one method;
// the report says so (node20Polyfill).
const NODE20_POLYFILL = typeof Promise.withResolvers !== "function";
if (NODE20_POLYFILL) {
  Promise.withResolvers = () => {
    let resolve;
    let reject;
    const promise = new Promise((yes, no) => {
      resolve = yes;
      reject = no;
    });
    return { promise, resolve, reject };
  };
}

const roles = { relay, server, client };
const role = argument("role");
if (role === null) await orchestrate();
else await roles[role]();

async function orchestrate() {
  const dir = process.env.ENGINES_DIR ?? "/dev/shm/engines-libp2p";
  const install = installEngine(dir, PACKAGES);
  console.log(JSON.stringify({ engine: "libp2p", install, node20Polyfill: NODE20_POLYFILL }));
  const script = join(dir, "libp2p.mjs");
  const relayNode = startRole(script, "relay");
  const { relayAddress } = await relayNode.line("relayAddress");
  try {
    for (const mode of ["direct", "relay"]) {
      const runs = [];
      for (let run = 0; run <= runCount(); run++) {
        const relayCpuBefore = processCpuSeconds(relayNode.child.pid);
        const figures = await oneRun(script, mode === "relay" ? relayAddress : null);
        figures.relayCpuPerGib =
          (processCpuSeconds(relayNode.child.pid) - relayCpuBefore) / (transferBytes() / 2 ** 30);
        console.error(`engines: libp2p ${mode} run ${run}: ${figures.mbPerSecond.toFixed(1)} MB/s`);
        if (run > 0) runs.push(figures); // run 0 warms up
      }
      if (mode === "relay" && runs.some((figures) => figures.relayCpuPerGib < 0.05))
        throw new Error("the relay node carried nothing: the relayed runs went direct");
      report("libp2p", mode, runs, {
        relayCpuPerGib: mode === "relay" ? summarise(runs, "relayCpuPerGib", 2) : null,
      });
    }
  } finally {
    relayNode.stop();
  }
}

async function oneRun(script, relayAddress) {
  const relayArgs = relayAddress === null ? [] : ["--relay", relayAddress];
  const serverRole = startRole(script, "server", relayArgs);
  const { dialAddress } = await serverRole.line("dialAddress");
  const clientRole = startRole(script, "client", ["--address", dialAddress]);
  const [clientReport, serverReport] = await bothExited(clientRole, serverRole);
  return runFigures(clientReport, serverReport);
}

/** A libp2p node with what every role shares; nothing in it dials anything by itself. */
async function createNode(extra) {
  const { createLibp2p } = await import("libp2p");
  const { tcp } = await import("@libp2p/tcp");
  const { noise } = await import("@chainsafe/libp2p-noise");
  const { yamux } = await import("@chainsafe/libp2p-yamux");
  const { identify } = await import("@libp2p/identify");
  return createLibp2p({
    transports: [tcp(), ...(extra.transports ?? [])],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    addresses: { listen: extra.listen ?? [] },
    services: { identify: identify(), ...(extra.services ?? {}) },
  });
}

async function relay() {
  const { circuitRelayServer } = await import("@libp2p/circuit-relay-v2");
  const node = await createNode({
    listen: ["/ip4/127.0.0.1/tcp/0"],
    // Unlimited: by default a relayed connection may carry 128 KiB for 2 minutes.
    services: { relay: circuitRelayServer({ reservations: { applyDefaultLimit: false } }) },
  });
  const address = node.getMultiaddrs().find((ma) => ma.toString().includes("/tcp/"));
  console.log(JSON.stringify({ relayAddress: address.toString() }));
  process.once("SIGTERM", () => node.stop().then(() => process.exit(0)));
}

async function server() {
  const { circuitRelayTransport } = await import("@libp2p/circuit-relay-v2");
  const relayAddress = argument("relay");
  const node = await createNode({
    transports: [circuitRelayTransport()],
    listen: relayAddress === null ? ["/ip4/127.0.0.1/tcp/0"] : [`${relayAddress}/p2p-circuit`],
  });
  const total = transferBytes();
  const block = randomBytes(64 * 1024);
  await node.handle(
    PROTOCOL,
    async (stream) => {
      const cpuAtOpen = cpuSeconds();
      for (let sent = 0; sent < total; sent += block.length) {
        if (!stream.send(block)) await stream.onDrain();
      }
      await stream.close();
      // The client closes its end once it has every byte.
      await new Promise((resolve) => stream.addEventListener("close", resolve, { once: true }));
      console.log(JSON.stringify({ cpuSeconds: cpuSeconds() - cpuAtOpen }));
      await node.stop();
      process.exit(0);
    },
    { runOnLimitedConnection: true },
  );
  const wanted = relayAddress === null ? "/tcp/" : "/p2p-circuit";
  for (let tries = 0; tries < 100; tries++) {
    const address = node.getMultiaddrs().find((ma) => ma.toString().includes(wanted));
    if (address !== undefined) {
      console.log(JSON.stringify({ dialAddress: address.toString() }));
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100)); // the relay reservation is asynchronous
  }
  throw new Error(`no ${wanted} address after 10 s`);
}

async function client() {
  const { circuitRelayTransport } = await import("@libp2p/circuit-relay-v2");
  const { multiaddr } = await import("@multiformats/multiaddr");
  const node = await createNode({ transports: [circuitRelayTransport()] });
  const total = transferBytes();
  const dialledAt = performance.now();
  const stream = await node.dialProtocol(multiaddr(argument("address")), PROTOCOL, {
    runOnLimitedConnection: true,
  });
  const openedAt = performance.now();
  const cpuAtOpen = cpuSeconds();
  let received = 0;
  for await (const chunk of stream) {
    received += chunk.byteLength;
    if (received >= total) break;
  }
  const finishedAt = performance.now();
  const cpu = cpuSeconds() - cpuAtOpen;
  await stream.close();
  console.log(
    JSON.stringify({
      bytes: received,
      transferSeconds: (finishedAt - openedAt) / 1000,
      startupMs: openedAt,
      connectMs: openedAt - dialledAt,
      cpuSeconds: cpu,
    }),
  );
  await node.stop();
  process.exit(0);
}
