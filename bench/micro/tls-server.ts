/**
 * Child process of tls.ts: teleport's own TLS listener (src/transport/tcp.ts, all three suites
 * allowed) answering each connection's u32 request for N MiB with N MiB of 1 MiB writes. It runs
 * apart so that encryption and decryption each get a core, as host and client do.
 *
 *   node dist/bench/micro/tls-server.js HOME   (sends its port over the IPC channel)
 */
import type { TLSSocket } from "node:tls";
import { loadOrCreateIdentity } from "../../src/transport/identity.js";
import { listenTls } from "../../src/transport/tcp.js";
import { MIB } from "./task.js";

const home = process.argv[2];
if (home === undefined || process.send === undefined) {
  console.error("usage: fork tls-server.js HOME (with an IPC channel)");
  process.exit(2);
}

const block = Buffer.alloc(MIB, 7);

function serve(socket: TLSSocket): void {
  socket.on("error", () => socket.destroy());
  socket.once("data", (request: Buffer) => {
    if (request.length < 4) return void socket.destroy();
    const total = request.readUInt32LE(0);
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        sent++;
        if (!socket.write(block)) return void socket.once("drain", pump);
      }
      socket.end();
    };
    pump();
  });
}

const identity = await loadOrCreateIdentity(home);
const listener = await listenTls(identity, { host: "127.0.0.1", port: 0 }, serve);
process.send(listener.port);
process.on("disconnect", () => process.exit(0));
