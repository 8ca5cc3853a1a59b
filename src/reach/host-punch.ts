/**
 * The host's half of a hole punch (PUNCH, Feature.PUNCH): it learns where its NAT maps its QUIC
 * socket by reflecting it at the relay the client names, starts punching from that socket towards
 * the client's mapping, and answers with its own, which the client then dials. The client is
 * authenticated (PUNCH is taken only after its proof of the secret), but what it names is still
 * bounded: a few reflections at once over the whole host, a few dozen tiny datagrams each.
 */
import { isIPv4 } from "node:net";
import { ErrorCode, TeleportError } from "../errors.js";
import type { PunchReady, PunchRequest } from "../wire/punch-messages.js";
import { reflectUdpPort } from "./reflect.js";
import { punchTowards, whyNoPunching } from "./udp-punch.js";

/** Punches the host works on at once; more are refused (the client stays on the relay). */
const MAX_PUNCHES_AT_ONCE = 4;
/**
 * How long the host punches: long enough for the answer to cross the relay and the client's
 * QUIC Initial (and its retransmissions) to come back, on long paths too.
 */
const PUNCH_SCHEDULE = { count: 30, intervalMs: 100 };

export class HostPuncher {
  readonly #quicPort: number;
  #punching = 0;

  /** Punches from the QUIC socket bound to `quicPort`, the host's listener's. */
  constructor(quicPort: number) {
    this.#quicPort = quicPort;
  }

  /** A puncher for the QUIC listener on `quicPort`, or undefined where punching cannot work. */
  static where(quicPort: number | undefined): HostPuncher | undefined {
    if (quicPort === undefined || whyNoPunching() !== undefined) return undefined;
    return new HostPuncher(quicPort);
  }

  async answer(request: PunchRequest): Promise<PunchReady> {
    const { client, relayHost, relayPort } = request;
    if (!isIPv4(client.address) || client.port === 0 || relayPort === 0)
      throw new TeleportError(ErrorCode.PROTOCOL, "PUNCH names no IPv4 address and port");
    if (this.#punching >= MAX_PUNCHES_AT_ONCE)
      throw new TeleportError(ErrorCode.UNAVAILABLE, "the host is busy punching for other clients");
    this.#punching++;
    try {
      const host = await reflectUdpPort({ host: relayHost, port: relayPort }, this.#quicPort);
      punchTowards(this.#quicPort, client, PUNCH_SCHEDULE);
      return { host };
    } finally {
      this.#punching--;
    }
  }
}

/** The answer to a client's PUNCH, where this host punches (`puncher`, see HostPuncher.where). */
export function answerPunch(puncher: HostPuncher | undefined, request: PunchRequest): Promise<PunchReady> {
  if (puncher === undefined)
    return Promise.reject(new TeleportError(ErrorCode.UNAVAILABLE, "this host does not punch"));
  return puncher.answer(request);
}
