/**
 * The client's half of a hole punch, for a pull whose control connection runs through a relay:
 * reflect the QUIC dialling socket at the relay (its public address), send PUNCH with it over the
 * control connection (end to end, authenticated), and dial QUIC to the address the host answers
 * with, from that same socket. The host has been punching towards ours since before it answered,
 * so our Initial passes its NAT, and ours opened our NAT to its answers; QUIC retransmits its
 * Initial while the two cross. The dial is the ordinary QUIC transport, so the host proves the
 * link's fingerprint there as anywhere. Any failure leaves the pull on the relay, saying why.
 */
import { toTeleportError } from "../errors.js";
import type { RelayAddress } from "../relay/relay-protocol.js";
import type { ShareLink } from "../transport/link.js";
import { quicAvailable, quicTransport } from "../transport/quic.js";
import { clientEndpoint } from "../transport/quic-binding.js";
import { clientKey } from "../transport/quic-identity.js";
import type { PunchReady, PunchRequest } from "../wire/punch-messages.js";
import { reflectUdpPort } from "./reflect.js";
import { punchTowards, whyNoPunching } from "./udp-punch.js";

/**
 * How long the dial through the punched hole may take: the host punches for 3 s from its answer,
 * and a handshake that has not got through by then will not.
 */
const PUNCHED_DIAL_TIMEOUT_MS = 3000;

/** What a client asks of its control connection to punch. */
export interface PunchingPeer {
  readonly hostPunches: boolean;
  punch(request: PunchRequest, signal?: AbortSignal): Promise<PunchReady>;
}

export type PunchOutcome = { punched: true; link: ShareLink } | { punched: false; why: string };

/** Why this client cannot punch to the host at all, or undefined when it may try. */
function whyNotTry(peer: PunchingPeer): string | undefined {
  if (!quicAvailable) return "QUIC is not available on this machine";
  const local = whyNoPunching();
  if (local !== undefined) return local;
  if (!peer.hostPunches)
    return "the host does not punch (no QUIC or no native addon there, or an older version)";
  return undefined;
}

/**
 * Punches a direct QUIC path to the host `link` names, meeting at `relay`; the link to dial
 * through it (the host's public address, the same fingerprint and secret), or why not.
 */
export async function punchDirectPath(
  peer: PunchingPeer,
  link: ShareLink,
  relay: RelayAddress,
  signal?: AbortSignal,
): Promise<PunchOutcome> {
  const why = whyNotTry(peer);
  if (why !== undefined) return { punched: false, why };
  const { localPort } = clientEndpoint(clientKey);
  if (localPort === undefined) return { punched: false, why: "the QUIC dialling socket was not found" };
  try {
    const client = await reflectUdpPort(relay, localPort);
    const { host } = await peer.punch({ client, relayHost: relay.host, relayPort: relay.port }, signal);
    punchTowards(localPort, host, { count: 1, intervalMs: 1 });
    const punched: ShareLink = { ...link, host: host.address, port: host.port };
    const probe = await quicTransport.dial(punched, {
      timeoutMs: PUNCHED_DIAL_TIMEOUT_MS,
      ...(signal === undefined ? {} : { signal }),
    });
    probe.stream.destroy();
    return { punched: true, link: punched };
  } catch (err) {
    return { punched: false, why: toTeleportError(err).message };
  }
}
