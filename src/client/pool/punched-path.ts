/**
 * A pull that reached its host through a relay tries a direct path beside it: a QUIC path punched
 * through both NATs (reach/client-punch.ts), met at the relay the control connection went
 * through. Once the path works the pool moves its data streams there, without restarting the
 * pull; the control connection stays on the relay. When it does not, the pull stays on the relay
 * and says why to those who asked for detail (`--verbose`). Only under `--transport auto`.
 */
import { type PunchingPeer, punchDirectPath } from "../../reach/client-punch.js";
import type { ShareLink } from "../../transport/link.js";
import { type PathKind, pathOf, TRANSPORT_KINDS, type TransportCounts } from "../../transport/transport.js";
import type { StreamPool } from "./stream-pool.js";

export interface PunchingClient extends PunchingPeer {
  readonly link: ShareLink;
  /** The control connection's transport ("relay" when it went through one). */
  readonly transport: string;
  /** A transport the user chose (`--transport relay`) is kept to: only `auto` punches. */
  readonly transportChoice: string;
  /** Where the control connection goes: the relay's address, when it went through one. */
  readonly remoteAddress: string;
}

export interface PunchNotices {
  /** Told when the streams move to the punched path. */
  onNotice?: ((message: string) => void) | undefined;
  /** Told why the pull stays on the relay (`--verbose`). */
  onDetail?: ((message: string) => void) | undefined;
  /** Told once the data streams have moved (the progress line then says so). */
  onMoved?: (() => void) | undefined;
}

/** Starts a punch beside `pool`'s pull when its client came through a relay; never throws. */
export function tryPunchedPath(pool: StreamPool, client: PunchingClient, notices: PunchNotices): void {
  if (client.transport !== "relay" || client.transportChoice !== "auto") return;
  const relays = client.link.relays ?? [];
  const relay = relays.find((r) => r.host === client.remoteAddress) ?? relays[0];
  if (relay === undefined) return;
  void punchDirectPath(client, client.link, relay).then((outcome) => {
    if (!outcome.punched) {
      notices.onDetail?.(`staying on the relay: no direct path punched (${outcome.why})`);
      return;
    }
    // A punch that lands after the pull's last chunk moves nothing, and says nothing.
    if (!pool.moveToPunchedPath(outcome.link)) return;
    const { host, port } = outcome.link;
    notices.onNotice?.(
      `punched a direct QUIC path to the host at ${host}:${port}; moving the data streams off the relay`,
    );
    notices.onMoved?.();
  });
}

/**
 * Chunk bytes by the way they came: each transport's on its path, and the QUIC bytes delivered
 * after the streams moved to a punched path (`quicBytesBeforePunch` set then) as punched.
 */
export function bytesByPath(
  delivered: TransportCounts,
  quicBytesBeforePunch: number | undefined,
): Record<PathKind, number> {
  const byPath: Record<PathKind, number> = { direct: 0, relay: 0, punched: 0 };
  for (const kind of TRANSPORT_KINDS) byPath[pathOf(kind)] += delivered[kind];
  const punched = delivered.quic - (quicBytesBeforePunch ?? delivered.quic);
  byPath.direct -= punched;
  byPath.punched += punched;
  return byPath;
}
