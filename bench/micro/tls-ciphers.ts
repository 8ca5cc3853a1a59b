/**
 * TLS 1.3 throughput per cipher suite on loopback: a server in a child process writes 1 GiB in
 * 1 MiB writes, this process reads it. Shows why teleport prefers AES-128-GCM (see
 * src/transport/tls.ts). Run: node dist/bench/micro/tls-ciphers.js [--mib N] [--runs N]
 */
import { fork } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { loadOrCreateIdentity } from "../../src/transport/identity.js";

const SUITES = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"];
const args = process.argv.slice(2);
const mib = Number(args[args.indexOf("--mib") + 1] || 1024) || 1024;
const runs = Number(args[args.indexOf("--runs") + 1] || 3) || 3;

if (process.argv[2] === "--serve") {
  const [, , , home, suite, total] = process.argv;
  const identity = await loadOrCreateIdentity(home as string);
  const block = Buffer.alloc(1024 * 1024, 7);
  const server = tls.createServer(
    { key: identity.keyPem, cert: identity.certPem, ciphers: suite },
    (socket) => {
      let sent = 0;
      const pump = () => {
        while (sent < Number(total)) {
          sent++;
          if (!socket.write(block)) return void socket.once("drain", pump);
        }
        socket.end();
      };
      pump();
    },
  );
  server.listen(0, "127.0.0.1", () => process.send?.((server.address() as { port: number }).port));
  process.on("disconnect", () => process.exit(0));
} else {
  const home = await mkdtemp(join(tmpdir(), "teleport-tls-bench-"));
  await loadOrCreateIdentity(home);
  for (const suite of SUITES) {
    const rates: number[] = [];
    for (let run = 0; run <= runs; run++) {
      const server = fork(process.argv[1] as string, ["--serve", home, suite, String(mib)]);
      const port = await new Promise<number>((resolve) =>
        server.once("message", (m) => resolve(m as number)),
      );
      const started = performance.now();
      const received = await new Promise<number>((resolve, reject) => {
        let bytes = 0;
        const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ciphers: suite });
        socket.on("data", (data: Buffer) => {
          bytes += data.length;
        });
        socket.on("end", () => resolve(bytes));
        socket.on("error", reject);
      });
      const seconds = (performance.now() - started) / 1000;
      server.disconnect();
      if (run > 0) rates.push(received / seconds / 1e6); // run 0 warms up
    }
    rates.sort((a, b) => a - b);
    const median = rates[Math.floor(rates.length / 2)] ?? 0;
    console.log(
      JSON.stringify({
        suite,
        medianMBps: Math.round(median),
        minMBps: Math.round(rates[0] ?? 0),
        maxMBps: Math.round(rates.at(-1) ?? 0),
      }),
    );
  }
  await rm(home, { recursive: true, force: true });
}
