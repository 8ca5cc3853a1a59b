/**
 * A path to a host with TCP and UDP treated differently, as some networks do (a middlebox that
 * shapes TCP, a link that polices UDP): one port takes both, relays TCP connections and UDP
 * datagrams to the host's port, and holds each direction to its own delay and rate. Links to it
 * reach the host through it; the host's identity is untouched (the relay sees ciphertext only).
 *
 * TCP is shaped by holding bytes (the sender is paused while its queue is full, so the rate is
 * what gets through, with no loss); UDP by dropping datagrams past a short queue, which QUIC's
 * congestion control sees as loss. Rates are shared by every connection of that protocol, as a
 * bottleneck link's are.
 */
import { execFileSync } from "node:child_process";
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { existsSync, mkdirSync, renameSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export interface Shape {
  /** Added to each direction. */
  delayMs: number;
  /** Bytes per second through the path, each direction; unlimited when absent. */
  bytesPerSecond?: number;
}

export interface ShapedPath {
  port: number;
  close(): Promise<void>;
}

/** Bytes a TCP direction may hold before its sender is paused. */
const TCP_QUEUE_BYTES = 256 * 1024;
/** Datagrams a UDP direction may hold before it drops them. */
const UDP_QUEUE_PACKETS = 64;

/**
 * A one-way link: what is sent leaves at the link's rate, in order, and arrives `delayMs` later.
 * One timer serves the queue, whatever its length.
 */
class Link {
  readonly #shape: Shape;
  #freeAt = 0;
  readonly #queue: { at: number; deliver: () => void }[] = [];
  #head = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(shape: Shape) {
    this.#shape = shape;
  }

  get queued(): number {
    return this.#queue.length - this.#head;
  }

  send(bytes: number, deliver: () => void): void {
    const now = performance.now();
    const rate = this.#shape.bytesPerSecond;
    const leaves = rate === undefined ? now : Math.max(now, this.#freeAt) + (bytes * 1000) / rate;
    this.#freeAt = leaves;
    this.#queue.push({ at: leaves + this.#shape.delayMs, deliver });
    this.#arm();
  }

  #arm(): void {
    if (this.#timer !== undefined || this.queued === 0) return;
    const next = this.#queue[this.#head] as { at: number };
    this.#timer = setTimeout(() => this.#run(), Math.max(0, next.at - performance.now()));
  }

  #run(): void {
    this.#timer = undefined;
    const now = performance.now();
    while (this.queued > 0 && (this.#queue[this.#head] as { at: number }).at <= now + 1) {
      const item = this.#queue[this.#head++] as { deliver: () => void };
      item.deliver();
    }
    if (this.#head > 1024) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
    this.#arm();
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#queue.length = 0;
    this.#head = 0;
  }
}

/** Relays `from` to `to` over `link`, pausing `from` while more than TCP_QUEUE_BYTES are held. */
function relay(from: Socket, to: Socket, link: Link): void {
  let held = 0;
  from.on("data", (data: Buffer) => {
    held += data.length;
    if (held > TCP_QUEUE_BYTES) from.pause();
    link.send(data.length, () => {
      held -= data.length;
      if (!to.destroyed) to.write(data);
      if (held <= TCP_QUEUE_BYTES / 2) from.resume();
    });
  });
  from.on("end", () => link.send(0, () => to.end()));
  from.on("error", () => to.destroy());
  from.on("close", () => link.send(0, () => to.destroy()));
}

export async function startShapedPath(
  hostPort: number,
  shapes: { tcp: Shape; udp: Shape },
): Promise<ShapedPath> {
  const tcpDown = new Link(shapes.tcp);
  const tcpUp = new Link(shapes.tcp);
  const udpDown = new Link(shapes.udp);
  const udpUp = new Link(shapes.udp);
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const host = createConnection({ host: "127.0.0.1", port: hostPort });
    for (const socket of [client, host]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.setNoDelay(true);
    }
    relay(client, host, tcpUp);
    relay(host, client, tcpDown);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const port = (server.address() as { port: number }).port;

  const front: UdpSocket = createSocket("udp4");
  /** One socket toward the host per client address, as a NAT keeps. */
  const peers = new Map<string, UdpSocket>();
  front.on("message", (datagram: Buffer, from: RemoteInfo) => {
    const key = `${from.address}:${from.port}`;
    let peer = peers.get(key);
    if (peer === undefined) {
      const created = createSocket("udp4");
      created.on("message", (reply: Buffer) => {
        if (udpDown.queued >= UDP_QUEUE_PACKETS) return;
        udpDown.send(reply.length, () => front.send(reply, from.port, from.address));
      });
      created.on("error", () => {});
      peers.set(key, created);
      peer = created;
    }
    const toHost = peer;
    if (udpUp.queued >= UDP_QUEUE_PACKETS) return;
    udpUp.send(datagram.length, () => {
      if (peers.get(key) === toHost) toHost.send(datagram, hostPort, "127.0.0.1", () => {});
    });
  });
  front.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    front.once("error", reject);
    front.bind(port, "127.0.0.1", () => resolve());
  });

  return {
    port,
    async close() {
      for (const link of [tcpDown, tcpUp, udpDown, udpUp]) link.close();
      for (const socket of sockets) socket.destroy();
      for (const peer of peers.values()) peer.close();
      peers.clear();
      front.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const SHIM_SOURCE = fileURLToPath(new URL("../../../test/helpers/slow-connect.c", import.meta.url));

/**
 * The environment that makes a CLI process's connect() calls take `ms` (see slow-connect.c),
 * or undefined where the shim cannot be built (no C compiler).
 */
export function slowConnectEnv(ms: number): Record<string, string> | undefined {
  const dir = join(tmpdir(), `teleport-test-shim-${process.getuid?.() ?? 0}`);
  const library = join(dir, "slow-connect.so");
  if (!existsSync(library)) {
    try {
      mkdirSync(dir, { recursive: true });
      const partial = `${library}.${process.pid}`;
      execFileSync("cc", ["-shared", "-fPIC", "-O2", "-o", partial, SHIM_SOURCE, "-ldl"], {
        stdio: "ignore",
      });
      renameSync(partial, library);
    } catch {
      return undefined;
    }
  }
  return { LD_PRELOAD: library, SLOW_CONNECT_MS: String(ms) };
}
