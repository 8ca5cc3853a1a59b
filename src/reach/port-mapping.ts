/**
 * Asking the router in front of the host to forward its port (`host --map-port`): NAT-PMP first,
 * answered in one round trip where the router speaks it, then UPnP IGD (a multicast search, then
 * HTTP and SOAP to the router). The same port number is asked for over TCP and UDP, as the host
 * listens on both, and the mapping is kept (renewed before its lease ends) until the host stops.
 * `@achingbrain/nat-port-mapper` speaks both protocols; it is loaded only when asked for.
 */
import { readFile } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import type { Gateway } from "@achingbrain/nat-port-mapper";
import { toTeleportError } from "../errors.js";

/** NAT-PMP answers in a round trip on the LAN; a router that does not speak it never answers. */
const PMP_TIMEOUT_MS = 1500;
/** UPnP: the multicast search and the router's HTTP description take a few round trips more. */
const UPNP_TIMEOUT_MS = 4000;
const DESCRIPTION = "teleport host";

export interface MappedPort {
  /** The router's public address and the port it forwards to the host's. */
  host: string;
  port: number;
  protocol: "NAT-PMP" | "UPnP";
  /** Removes the mapping (best effort: a router may be gone by then). */
  release(): Promise<void>;
}

export type PortMappingOutcome = { mapped: MappedPort } | { mapped: undefined; why: string };

/** The IPv4 default route's gateway and the interface it is reached through, from /proc/net/route. */
export async function defaultGateway(): Promise<{ gateway: string; interfaceName: string } | undefined> {
  const table = await readFile("/proc/net/route", "utf8").catch(() => "");
  for (const line of table.split("\n").slice(1)) {
    const [interfaceName, destination, gatewayHex] = line.trim().split(/\s+/);
    if (interfaceName === undefined || destination !== "00000000" || gatewayHex === undefined) continue;
    const value = Number.parseInt(gatewayHex, 16);
    // Little-endian on the machines this runs on (x86-64, arm64).
    const gateway = [value & 255, (value >>> 8) & 255, (value >>> 16) & 255, value >>> 24].join(".");
    return { gateway, interfaceName };
  }
  return undefined;
}

function interfaceAddress(name: string): string | undefined {
  return networkInterfaces()[name]?.find((address) => address.family === "IPv4" && !address.internal)
    ?.address;
}

/** Maps `port` over TCP and UDP on `gateway`; the public address, or a throw. */
async function mapBoth(gateway: Gateway, localHost: string, port: number, timeoutMs: number) {
  const options = { externalPort: port, description: DESCRIPTION, signal: AbortSignal.timeout(timeoutMs) };
  const tcp = await gateway.map(port, localHost, { ...options, protocol: "TCP" });
  await gateway.map(port, localHost, { ...options, protocol: "UDP" });
  return tcp;
}

function releaser(gateway: Gateway): () => Promise<void> {
  return async () => {
    await gateway.stop({ signal: AbortSignal.timeout(2000) }).catch(() => {});
  };
}

/** Asks the router to forward `port` (TCP and UDP) to this machine; what it gave, or why not. */
export async function mapHostPort(port: number): Promise<PortMappingOutcome> {
  const route = await defaultGateway();
  if (route === undefined) return { mapped: undefined, why: "no IPv4 default route (no router to ask)" };
  const localHost = interfaceAddress(route.interfaceName);
  if (localHost === undefined) return { mapped: undefined, why: `no IPv4 address on ${route.interfaceName}` };
  const { pmpNat, upnpNat } = await import("@achingbrain/nat-port-mapper");
  const failures: string[] = [];
  const pmp = pmpNat(route.gateway);
  try {
    const mapping = await mapBoth(pmp, localHost, port, PMP_TIMEOUT_MS);
    return {
      mapped: {
        host: mapping.externalHost,
        port: mapping.externalPort,
        protocol: "NAT-PMP",
        release: releaser(pmp),
      },
    };
  } catch (err) {
    await releaser(pmp)();
    failures.push(`NAT-PMP: ${toTeleportError(err).detail}`);
  }
  try {
    for await (const gateway of upnpNat().findGateways({ signal: AbortSignal.timeout(UPNP_TIMEOUT_MS) })) {
      try {
        const mapping = await mapBoth(gateway, localHost, port, UPNP_TIMEOUT_MS);
        return {
          mapped: {
            host: mapping.externalHost,
            port: mapping.externalPort,
            protocol: "UPnP",
            release: releaser(gateway),
          },
        };
      } catch (err) {
        await releaser(gateway)();
        failures.push(`UPnP: ${toTeleportError(err).detail}`);
      }
    }
    if (failures.length < 2) failures.push("UPnP: no gateway answered");
  } catch (err) {
    failures.push(`UPnP: ${toTeleportError(err).detail}`);
  }
  return { mapped: undefined, why: `the router mapped no port (${failures.join("; ")})` };
}

/** `host --map-port`: the mapping, told to `onNotice` either way. */
export async function mapHostPortTelling(
  port: number,
  onNotice: ((message: string) => void) | undefined,
): Promise<MappedPort | undefined> {
  const outcome = await mapHostPort(port);
  if (outcome.mapped === undefined) {
    onNotice?.(`--map-port: ${outcome.why}; the link names this machine's own address`);
    return undefined;
  }
  const { host, port: publicPort, protocol } = outcome.mapped;
  onNotice?.(`the router forwards ${host}:${publicPort} to port ${port} (${protocol}); the link names it`);
  return outcome.mapped;
}
