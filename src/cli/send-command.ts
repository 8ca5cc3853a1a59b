/**
 * `teleport send PATH`: hosts PATH under a fresh secret, offers its link under a join code
 * (printed alone on stdout's first line), and exits 0 once the one receiver whose code checked
 * out has pulled it. A wrong code (CODE_WRONG), an offer nobody took in time (CODE_EXPIRED) or
 * Ctrl-C end it non-zero; every way out retires the secret with the process.
 */
import { randomBytes } from "node:crypto";
import { realpath, stat } from "node:fs/promises";
import { basename } from "node:path";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { type ClientEvent, Host } from "../host/host.js";
import { parseRelayAddress } from "../relay/relay-protocol.js";
import { offerJoinCode } from "../rendezvous/join-offer.js";
import { encodeOfferPayload } from "../rendezvous/offer-payload.js";
import { StopSignals } from "./error-report.js";
import { teleportHome } from "./home.js";
import { FirstCompletePull } from "./host-command.js";
import { ClientLog } from "./host-log.js";
import { terminalLine } from "./terminal-text.js";

export interface SendFlags {
  relay?: string;
  /** Milliseconds the code may wait for its receiver. */
  expire: number;
  /** false with --no-lan. */
  lan?: boolean;
}

/** The link's secret: 16 bytes, as a folder's own, but new for each send and kept nowhere. */
const SEND_SECRET_BYTES = 16;
/** How long a receiver that has the link may take to connect before send gives up on it. */
const CONNECT_AFTER_CODE_MS = 60_000;

export async function sendCommand(path: string, flags: SendFlags): Promise<void> {
  const source = await realpath(path).catch((err: unknown) => {
    throw toTeleportError(err, path);
  });
  const oneFile = (await stat(source)).isFile();
  const notice = (message: string) => process.stderr.write(terminalLine(`teleport: ${message}`));
  const relay = flags.relay === undefined ? undefined : parseRelayAddress(flags.relay);
  const pulled = new FirstCompletePull();
  let connected = false;
  const clientLog = new ClientLog((line) => process.stderr.write(line));
  const host = await Host.start({
    root: source,
    home: teleportHome(),
    secret: randomBytes(SEND_SECRET_BYTES),
    // The link names the relay too: a receiver that cannot reach us directly goes through it.
    ...(relay === undefined ? {} : { relays: [relay] }),
    onNotice: notice,
    onClientEvent: (event: ClientEvent) => {
      clientLog.observe(event);
      pulled.observe(event);
      if (event.kind === "authenticated") connected = true;
    },
  });
  const stopSignals = new StopSignals();
  const complete = new Promise<void>((resolve) => pulled.onComplete(resolve));
  try {
    await offerJoinCode({
      payload: encodeOfferPayload({ link: host.url, name: basename(source), oneFile }),
      mailbox: relay,
      lan: flags.lan !== false,
      expireMs: flags.expire,
      signal: stopSignals.signal,
      onCode: (code) => {
        process.stdout.write(`${code}\n`);
        notice(`sending ${source}; on the other machine: teleport receive ${code}`);
      },
      onNotice: notice,
    });
    notice("the code checked out; the receiver is pulling");
    let noShow: NodeJS.Timeout | undefined;
    const receiverMissing = new Promise<never>((_resolve, reject) => {
      noShow = setTimeout(() => {
        if (!connected)
          reject(
            new TeleportError(
              ErrorCode.CONNECTION,
              "the receiver got the link but never connected to pull it",
            ),
          );
      }, CONNECT_AFTER_CODE_MS);
    });
    try {
      await Promise.race([complete, aborted(stopSignals.signal), receiverMissing]);
    } finally {
      clearTimeout(noShow);
    }
    notice("sent: the receiver pulled everything");
  } catch (err) {
    throw stopSignals.explain(
      err,
      "send",
      "the code no longer works: run `teleport send` again for a new one",
    );
  } finally {
    stopSignals.stop();
    await host.close().catch(() => {});
  }
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_resolve, reject) => {
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}
