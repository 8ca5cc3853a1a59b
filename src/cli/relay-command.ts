/**
 * `teleport relay`: run a relay (relay/relay-server.ts) until Ctrl-C. Its address, HOST:PORT,
 * is the first line of stdout once it listens (and is written to `--link-file`), so hosts can be
 * started with `--relay` that address. The relay splices only TLS bytes: it can see who meets
 * whom and how much they move, never what.
 */
import { networkInterfaces } from "node:os";
import { DEFAULT_RELAY_LIMITS, type RelayLimits } from "../relay/relay-limits.js";
import { formatRelayAddress, type RelayService } from "../relay/relay-protocol.js";
import { RelayServer } from "../relay/relay-server.js";
import { writePrivateFile } from "../store/private-file.js";

export interface RelayFlags {
  port?: number;
  bind?: string;
  linkFile?: string;
  maxHosts?: number;
  maxConnections?: number;
  /** Spliced bytes per second per host (0: unbounded). */
  hostRate?: number;
  /** Spliced bytes per second per connection (0: unbounded). */
  connectionRate?: number;
}

/** The services `teleport relay` mounts (RelayService): the join-code mailbox goes here. */
async function relayServices(): Promise<RelayService[]> {
  const { mailboxService } = await import("../rendezvous/relay-mailbox.js");
  return [mailboxService()];
}

export async function relayCommand(flags: RelayFlags): Promise<void> {
  const bind = flags.bind ?? "0.0.0.0";
  const limits: Partial<RelayLimits> = {
    ...(flags.maxHosts === undefined ? {} : { maxHosts: flags.maxHosts }),
    ...(flags.maxConnections === undefined ? {} : { maxConnections: flags.maxConnections }),
    ...(flags.hostRate === undefined ? {} : { hostBytesPerSecond: flags.hostRate }),
    ...(flags.connectionRate === undefined ? {} : { connectionBytesPerSecond: flags.connectionRate }),
  };
  const relay = await RelayServer.start({
    bind,
    ...(flags.port === undefined ? {} : { port: flags.port }),
    limits,
    services: await relayServices(),
  });
  const address = formatRelayAddress({ host: reachableAddress(relay.host), port: relay.port });
  process.stdout.write(`${address}\n`);
  if (flags.linkFile !== undefined) await writePrivateFile(flags.linkFile, `${address}\n`);
  const bounds = { ...DEFAULT_RELAY_LIMITS, ...limits };
  process.stderr.write(
    `teleport: relay on ${address} (TCP and UDP): up to ${bounds.maxHosts} hosts, ` +
      `${bounds.maxConnections} connections; Ctrl-C to stop\n`,
  );
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await relay.close();
}

/** The address to tell hosts: the bound one, or this machine's first external IPv4 when bound to all. */
function reachableAddress(bound: string): string {
  if (bound !== "0.0.0.0" && bound !== "::") return bound;
  for (const addresses of Object.values(networkInterfaces()))
    for (const address of addresses ?? [])
      if (address.family === "IPv4" && !address.internal) return address.address;
  return "127.0.0.1";
}
