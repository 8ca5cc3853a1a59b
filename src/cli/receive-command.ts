/**
 * `teleport receive CODE [DEST]`: finds the sender (LAN and relay at once), runs the code's
 * exchange, and pulls the link it yields as `teleport pull` would, its output and `--json`
 * included. Without DEST, a folder lands in a new folder of its own name here, a file here.
 */
import { lstat } from "node:fs/promises";
import { ErrorCode, TeleportError } from "../errors.js";
import { parseRelayAddress } from "../relay/relay-protocol.js";
import { type ClaimedOffer, claimJoinCode } from "../rendezvous/join-claim.js";
import { decodeOfferPayload } from "../rendezvous/offer-payload.js";
import { type PullFlags, pullCommand } from "./commands.js";
import { StopSignals } from "./error-report.js";
import { terminalLine } from "./terminal-text.js";

export interface ReceiveFlags extends PullFlags {
  relay?: string;
  /** false with --no-lan. */
  lan?: boolean;
}

export async function receiveCommand(
  code: string,
  dest: string | undefined,
  flags: ReceiveFlags,
): Promise<void> {
  const stopSignals = new StopSignals();
  let claimed: ClaimedOffer;
  try {
    claimed = await claimJoinCode(code, {
      mailbox: flags.relay === undefined ? undefined : parseRelayAddress(flags.relay),
      lan: flags.lan !== false,
      signal: stopSignals.signal,
    });
  } catch (err) {
    throw stopSignals.explain(err, "receive");
  } finally {
    stopSignals.stop();
  }
  const offer = decodeOfferPayload(claimed.payload);
  const into = dest ?? (offer.oneFile ? "." : offer.name);
  if (dest === undefined) await refuseExisting(offer.name);
  if (flags.quiet !== true && flags.json !== true)
    process.stderr.write(terminalLine(`teleport: the code checked out; pulling ${offer.name} into ${into}`));
  // A sender met at the relay is off this LAN: its link's own address is not waited for.
  await pullCommand(offer.link, into, claimed.via === "relay" ? { ...flags, relayHeadStartMs: 0 } : flags);
}

/** The sender names what lands here: never over something already here, unless DEST says so. */
async function refuseExisting(name: string): Promise<void> {
  const existing = await lstat(name).then(
    () => true,
    () => false,
  );
  if (existing)
    throw new TeleportError(ErrorCode.USAGE, `${name} is already here: name a DEST to receive into`, {
      hint: `teleport receive CODE DEST (pulling into an existing folder updates what it holds)`,
    });
}
