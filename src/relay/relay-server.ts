/**
 * `teleport relay`: a server that meets hosts and clients and splices their TCP connections,
 * seeing only the TLS bytes between them (relay-protocol.ts says what is said before). It holds
 * each registered host's control connection (relay-hosts.ts), asks the host for an accept leg
 * for each client that CONNECTs, and splices the two (splice.ts); it reflects UDP mappings
 * (reflector.ts), and hands connections to mounted services (RelayService). Every count, time
 * and rate is bounded (relay-limits.ts), and whatever does not fit is refused with a reason.
 */
import { randomBytes } from "node:crypto";
import * as net from "node:net";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { Reflector } from "./reflector.js";
import { faultsFromEnvironment, type RelayFaults } from "./relay-faults.js";
import { RelayHosts } from "./relay-hosts.js";
import { DEFAULT_RELAY_LIMITS, type RelayLimits, TokenBucket } from "./relay-limits.js";
import { RelayLink } from "./relay-link.js";
import {
  NONCE_BYTES,
  RefusalReason as Reason,
  type RelayMessage,
  type RelayService,
  RelayType,
  relayHello,
  SERVICE_NAME_PATTERN,
} from "./relay-protocol.js";
import { servicePeerOf } from "./relay-service-peer.js";

export interface RelayServerOptions {
  /** Address to listen on (TCP and UDP); default all IPv4 interfaces. */
  bind?: string;
  /** Port (TCP and UDP, the same number); default any free one. */
  port?: number;
  limits?: Partial<RelayLimits>;
  /** Services mounted on a connection's first frame (SERVICE with their name). */
  services?: RelayService[];
  /** Tests only: the hostile relay (relay-faults.ts); default what the environment asks for. */
  faults?: RelayFaults;
}

export interface RelayStats {
  hosts: number;
  connections: number;
  spliced: number;
  pending: number;
}

export class RelayServer {
  readonly host: string;
  readonly port: number;
  readonly #server: net.Server;
  readonly #reflector: Reflector;
  readonly #limits: RelayLimits;
  readonly #hosts: RelayHosts;
  readonly #services: Map<string, RelayService>;
  readonly #sockets = new Set<net.Socket>();
  readonly #perAddress = new Map<string, number>();
  readonly #connectRates = new Map<string, TokenBucket>();
  #closing: Promise<void> | undefined;

  private constructor(server: net.Server, reflector: Reflector, options: RelayServerOptions) {
    const address = server.address() as net.AddressInfo;
    this.host = address.address;
    this.port = address.port;
    this.#server = server;
    this.#reflector = reflector;
    this.#limits = { ...DEFAULT_RELAY_LIMITS, ...options.limits };
    this.#hosts = new RelayHosts(this.#limits, options.faults ?? faultsFromEnvironment());
    this.#services = new Map((options.services ?? []).map((service) => [service.name, service]));
    server.on("connection", (socket: net.Socket) => this.#accept(socket));
  }

  static async start(options: RelayServerOptions = {}): Promise<RelayServer> {
    for (const service of options.services ?? [])
      if (!SERVICE_NAME_PATTERN.test(service.name))
        throw new TeleportError(ErrorCode.USAGE, `"${service.name}" is not a relay service name`);
    const bind = options.bind ?? "0.0.0.0";
    // Each direction of a splice ends on its own (splice.ts).
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false });
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err) =>
        reject(toTeleportError(err, `listening on ${bind}:${options.port ?? 0}`)),
      );
      server.listen({ host: bind, port: options.port ?? 0 }, () => resolve());
    });
    const port = (server.address() as net.AddressInfo).port;
    let reflector: Reflector;
    try {
      reflector = await Reflector.bind(bind, port);
    } catch (err) {
      server.close();
      throw err;
    }
    return new RelayServer(server, reflector, options);
  }

  get stats(): RelayStats {
    return { ...this.#hosts.stats, connections: this.#sockets.size };
  }

  /** Stops accepting, ends every connection, and closes the services. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      this.#hosts.closeAll();
      for (const socket of this.#sockets) socket.destroy();
      await Promise.all([
        closed,
        this.#reflector.close(),
        ...[...this.#services.values()].map((s) => s.close?.()),
      ]);
    })();
    return this.#closing;
  }

  #accept(socket: net.Socket): void {
    const address = socket.remoteAddress ?? "";
    const refusal = this.#admit(address);
    this.#sockets.add(socket);
    this.#perAddress.set(address, (this.#perAddress.get(address) ?? 0) + 1);
    socket.once("close", () => {
      this.#sockets.delete(socket);
      const left = (this.#perAddress.get(address) ?? 1) - 1;
      if (left <= 0) this.#perAddress.delete(address);
      else this.#perAddress.set(address, left);
    });
    const limits = this.#limits;
    const frames = new TokenBucket(limits.framesPerSecond, limits.framesPerSecond * 2, performance.now());
    const nonce = randomBytes(NONCE_BYTES);
    const link = new RelayLink(socket, frames, limits.firstFrameTimeoutMs, {
      onMessage: (message) => this.#first(link, nonce, message),
      onClose: () => {},
    });
    if (refusal !== undefined) {
      link.refuse(refusal.reason, refusal.detail);
      return;
    }
    socket.write(relayHello(nonce));
  }

  /** Why a new connection from `address` is refused, if it is. */
  #admit(address: string): { reason: Reason; detail: string } | undefined {
    const limits = this.#limits;
    if (this.#closing !== undefined) return { reason: Reason.CLOSING, detail: "the relay is closing" };
    if (this.#sockets.size >= limits.maxConnections)
      return { reason: Reason.FULL, detail: `the relay holds ${limits.maxConnections} connections` };
    if ((this.#perAddress.get(address) ?? 0) >= limits.maxConnectionsPerAddress)
      return {
        reason: Reason.FULL,
        detail: `${limits.maxConnectionsPerAddress} connections from one address`,
      };
    if (this.#connectRates.size > 10_000) this.#connectRates.clear();
    let bucket = this.#connectRates.get(address);
    if (bucket === undefined) {
      bucket = new TokenBucket(
        limits.connectionsPerSecond,
        limits.connectionsPerSecond * 2,
        performance.now(),
      );
      this.#connectRates.set(address, bucket);
    }
    if (!bucket.tryTake(1, performance.now()))
      return { reason: Reason.RATE, detail: `over ${limits.connectionsPerSecond} new connections a second` };
    return undefined;
  }

  /** A connection's first frame: what it is for. */
  #first(link: RelayLink, nonce: Buffer, message: RelayMessage): void {
    switch (message.type) {
      case RelayType.REGISTER:
        this.#hosts.register(link, nonce, message, (asker) => this.#reflect(asker));
        return;
      case RelayType.CONNECT:
        this.#hosts.connect(link, message.fingerprint);
        return;
      case RelayType.ACCEPT:
        this.#hosts.accept(link, message.token);
        return;
      case RelayType.REFLECT:
        this.#reflectOnly(link);
        return;
      case RelayType.SERVICE:
        this.#openService(link, message.name);
        return;
      default:
        link.refuse(Reason.UNEXPECTED, `message 0x${message.type.toString(16)} cannot open a connection`);
    }
  }

  /** A connection opened for reflecting: REFLECTs (and PINGs), until it idles out. */
  #reflectOnly(link: RelayLink): void {
    link.setIdleTimeout(this.#limits.idleTimeoutMs);
    link.events = {
      onMessage: (message) => {
        if (message.type !== RelayType.REFLECT) link.refuse(Reason.UNEXPECTED, "only REFLECT here");
        else this.#reflect(link);
      },
      onClose: () => this.#reflector.forgetAsker(link),
    };
    this.#reflect(link);
  }

  #reflect(link: RelayLink): void {
    const answer = this.#reflector.nonceFor(link);
    if (answer === undefined) link.refuse(Reason.RATE, "too many reflects outstanding");
    else link.send(answer);
  }

  #openService(link: RelayLink, name: string): void {
    const service = this.#services.get(name);
    if (service === undefined) {
      link.refuse(Reason.NO_SERVICE, `no service "${name}" here`);
      return;
    }
    link.setIdleTimeout(this.#limits.idleTimeoutMs);
    service.open(servicePeerOf(link));
  }
}
