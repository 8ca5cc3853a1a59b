/**
 * Loopback ports a test holds for its whole run, so no other process can take them between a
 * host stopping and the next connection: one that refuses everything (a host that is not
 * running) and one that forwards to whichever host is running now (a host restarted with the
 * same link).
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import type { TestContext } from "node:test";
import { formatLink, parseLink } from "../../src/transport/link.js";
import { onCleanup } from "./context.js";

export interface HeldPort {
  port: number;
  /** Forwards new TCP connections to this loopback port; undefined resets them as they arrive. */
  forwardTo(port: number | undefined): void;
}

/**
 * A loopback port held over TCP and UDP until the test ends. TCP connections are reset (or
 * forwarded, see HeldPort.forwardTo); UDP datagrams are dropped, so QUIC finds no host there.
 */
export async function holdPort(t: TestContext): Promise<HeldPort> {
  let target: number | undefined;
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
  };
  const server = createServer((client) => {
    track(client);
    if (target === undefined) {
      client.resetAndDestroy();
      return;
    }
    const upstream = createConnection({ host: "127.0.0.1", port: target });
    track(upstream);
    client.pipe(upstream).pipe(client);
    upstream.on("error", () => client.resetAndDestroy());
    client.on("error", () => upstream.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  const { port, udp } = await listenOnBoth(server);
  onCleanup(t, async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await new Promise<void>((resolve) => udp.close(() => resolve()));
  });
  return {
    port,
    forwardTo(port) {
      target = port;
    },
  };
}

/** `link` with its port replaced. */
export function linkToPort(link: string, port: number): string {
  return formatLink({ ...parseLink(link), port });
}

/** Listens on a free TCP port and binds UDP to the same number, trying again if UDP has it taken. */
async function listenOnBoth(server: Server): Promise<{ port: number; udp: UdpSocket }> {
  for (let attempt = 1; ; attempt++) {
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const address = server.address();
    if (address === null || typeof address !== "object") throw new Error("no address for the held port");
    const udp = createSocket("udp4");
    udp.on("message", () => {}); // dropped: a QUIC dial there gets no answer
    try {
      udp.bind(address.port, "127.0.0.1");
      await once(udp, "listening");
      return { port: address.port, udp };
    } catch (err) {
      udp.removeAllListeners();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (attempt === 5) throw err;
    }
  }
}
