/**
 * TLS 1.3 throughput per cipher suite on loopback: teleport's listener in a child process
 * (tls-server.ts) sends N MiB, this process receives it offering one suite only. Only the bytes
 * are timed, not the handshake. It is the ceiling of one encrypted connection here, and shows
 * whether the suite order in src/transport/tcp.ts costs speed.
 */
import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import * as tls from "node:tls";
import { fileURLToPath } from "node:url";
import type { FnReturnedObject } from "tinybench";
import { registerCleanup } from "../lib/processes.js";
import { MIB, type MicroTask, type TaskGroup } from "./task.js";

export const TLS_SUITES = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
] as const;
export type TlsSuite = (typeof TLS_SUITES)[number];

export function tlsTaskName(suite: TlsSuite): string {
  return `tls1.3 ${suite}`;
}

export interface TlsTaskOptions {
  /** MiB per transfer. */
  mib: number;
  /** Transfers per round. */
  transfers: number;
  scratchDir: string;
}

export async function prepareTlsTasks(options: TlsTaskOptions): Promise<TaskGroup> {
  const home = mkdtempSync(join(options.scratchDir, "micro-tls-"));
  const removeHome = registerCleanup(() => rmSync(home, { recursive: true, force: true }));
  const server = await startServer(home).catch(async (err: unknown) => {
    await removeHome.run();
    throw err;
  });
  const tasks = TLS_SUITES.map(
    (suite): MicroTask => ({
      name: tlsTaskName(suite),
      operation: `receive ${options.mib} MiB over one loopback TLS 1.3 connection, ${suite} only`,
      role: "limit",
      bytesPerOp: options.mib * MIB,
      async: true,
      iterationsPerRound: options.transfers,
      run: () => receive(server.port, suite, options.mib),
    }),
  );
  return {
    tasks,
    close: async () => {
      await server.stop();
      await removeHome.run();
    },
  };
}

interface BulkServer {
  port: number;
  stop(): Promise<void>;
}

async function startServer(home: string): Promise<BulkServer> {
  const script = fileURLToPath(new URL("./tls-server.js", import.meta.url));
  const child: ChildProcess = fork(script, [home], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const exited = once(child, "exit");
  const kill = registerCleanup(() => void child.kill("SIGKILL"));
  const port = await Promise.race([
    once(child, "message").then(([message]) => message as number),
    exited.then(([code]) => Promise.reject(new Error(`TLS bench server exited with code ${code}`))),
  ]).catch((err: unknown) => {
    void kill.run();
    throw err;
  });
  return {
    port,
    stop: async () => {
      kill.forget();
      if (child.exitCode === null && child.signalCode === null) {
        child.disconnect(); // the server exits when its parent lets go
        await exited;
      }
    },
  };
}

/** One transfer; resolves with the time from request to last byte as the sample. */
function receive(port: number, suite: TlsSuite, mib: number): Promise<FnReturnedObject> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: "127.0.0.1",
      port,
      minVersion: "TLSv1.3",
      ciphers: suite,
      ALPNProtocols: ["teleport/1"],
      // A benchmark of bulk speed: the certificate is the child's own, nothing to verify.
      rejectUnauthorized: false,
    });
    let started = 0;
    let received = 0;
    socket.once("secureConnect", () => {
      const negotiated = socket.getCipher().standardName;
      if (negotiated !== suite) {
        socket.destroy(new Error(`asked for ${suite}, negotiated ${negotiated}`));
        return;
      }
      const request = Buffer.alloc(4);
      request.writeUInt32LE(mib);
      started = performance.now();
      socket.write(request);
    });
    socket.on("data", (data: Buffer) => {
      received += data.length;
    });
    socket.once("end", () => {
      const elapsed = performance.now() - started;
      socket.end();
      if (received === mib * MIB) resolve({ overriddenDuration: elapsed });
      else reject(new Error(`received ${received} of ${mib * MIB} bytes over ${suite}`));
    });
    socket.once("error", reject);
  });
}
