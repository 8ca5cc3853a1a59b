/**
 * Finding a sender on the same LAN by mDNS (RFC 6762), as LocalSend does: `teleport send`
 * answers for `teleport-<nameplate>._teleport-code._tcp.local` with an SRV record naming its
 * mailbox's port, and `receive CODE` asks for that name. The receiver dials the address the
 * answer came from, not one the answer names, so a record cannot point it anywhere else; and
 * whatever it reaches must still pass SPAKE2 with the code. multicast-dns is loaded only here
 * (docs/decisions.md, "mDNS: multicast-dns").
 */
import type { RemoteInfo } from "node:dgram";
import { ErrorCode, TeleportError } from "../errors.js";

const SERVICE = "_teleport-code._tcp.local";
/** mDNS loses packets: the question is asked again this often until an answer comes. */
const QUERY_INTERVAL_MS = 1000;
/** How long a record may be cached: the offer's life is short, and the port is ephemeral. */
const RECORD_TTL_SECONDS = 60;

export interface LanAdvertisement {
  close(): Promise<void>;
}

export interface LanOffer {
  host: string;
  port: number;
}

function instanceName(nameplate: number): string {
  return `teleport-${nameplate}.${SERVICE}`;
}

type Mdns = import("multicast-dns").MulticastDNS;

async function openMdns(): Promise<Mdns> {
  const { default: multicastDns } = await import("multicast-dns");
  const mdns = multicastDns();
  // A LAN without multicast (or a sandbox) leaves discovery to the relay; it must not end the command.
  mdns.on("error", () => {});
  mdns.on("warning", () => {});
  return mdns;
}

/** Answers queries for the offer under `nameplate`, at `port`, until closed. */
export async function advertiseOffer(nameplate: number, port: number): Promise<LanAdvertisement> {
  const mdns = await openMdns();
  const name = instanceName(nameplate);
  mdns.on("query", (query) => {
    if (!query.questions.some((question) => question.name.toLowerCase() === name.toLowerCase())) return;
    mdns.respond({
      answers: [
        {
          name,
          type: "SRV",
          ttl: RECORD_TTL_SECONDS,
          data: { port, target: `teleport-${nameplate}.local`, priority: 0, weight: 0 },
        },
      ],
    });
  });
  return { close: () => new Promise((resolve) => mdns.destroy(() => resolve())) };
}

/**
 * The first sender on the LAN to answer for `nameplate`: the address its answer came from and
 * the port its SRV record names. Runs until found or `signal` aborts.
 */
export async function findOffer(nameplate: number, signal: AbortSignal): Promise<LanOffer> {
  const mdns = await openMdns();
  const name = instanceName(nameplate).toLowerCase();
  try {
    return await new Promise<LanOffer>((resolve, reject) => {
      const ask = () => mdns.query({ questions: [{ name, type: "SRV" }] });
      const timer = setInterval(ask, QUERY_INTERVAL_MS);
      const stop = () => {
        clearInterval(timer);
        reject(new TeleportError(ErrorCode.CANCELLED, "LAN discovery stopped"));
      };
      signal.addEventListener("abort", stop, { once: true });
      mdns.on("response", (response, rinfo: RemoteInfo) => {
        for (const answer of response.answers) {
          if (answer.type !== "SRV" || answer.name.toLowerCase() !== name) continue;
          const port = answer.data.port;
          if (!Number.isInteger(port) || port <= 0 || port > 65535) continue;
          clearInterval(timer);
          signal.removeEventListener("abort", stop);
          resolve({ host: rinfo.address, port });
          return;
        }
      });
      ask();
    });
  } finally {
    mdns.destroy();
  }
}
