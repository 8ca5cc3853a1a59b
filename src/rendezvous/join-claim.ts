/**
 * The receiver's side of a join code (`teleport receive CODE`): looks for the sender on the LAN
 * (mDNS) and at the relay's mailbox at once, claims the nameplate wherever it is found, and runs
 * the exchange on whichever path the sender answers first; the others are dropped. Resolves to
 * the share link the sender sealed, once the sender's confirmation checked out.
 */
import { ErrorCode, TeleportError } from "../errors.js";
import { type JoinCode, parseJoinCode } from "./join-code.js";
import { awaitSenderShare, receiveLink, receiverStart } from "./join-exchange.js";
import { findOffer } from "./lan-discovery.js";
import type { MailboxConnection } from "./mailbox-connection.js";
import { dialRelayMailbox, dialSenderMailbox, type MailboxAddress } from "./mailbox-dial.js";

/** How long the LAN is searched: a sender there answers mDNS within a second or two. */
export const LAN_SEARCH_MS = 5000;
/** How long the sender has to answer a claim with its share. */
const SHARE_MS = 15_000;

export interface JoinClaimOptions {
  /** The relay's mailbox to claim at, besides the LAN. */
  mailbox?: MailboxAddress | undefined;
  /** Search the LAN by mDNS (default true). */
  lan?: boolean;
  lanSearchMs?: number;
  signal: AbortSignal;
}

/** Where a claim got an answer: the connection, and the sender's share that came on it. */
interface AnsweredClaim {
  connection: MailboxConnection;
  senderShare: Buffer;
  via: ClaimedVia;
}

/** Where the sender answered: its own mailbox on the LAN, or the relay's. */
export type ClaimedVia = "lan" | "relay";

/** What a code yields: the sender's sealed payload (the link and what it names), and where it came from. */
export interface ClaimedOffer {
  payload: string;
  via: ClaimedVia;
}

export async function claimJoinCode(codeText: string, options: JoinClaimOptions): Promise<ClaimedOffer> {
  const code = parseJoinCode(codeText);
  const { start, shareMessage } = receiverStart(code);
  const losers = new AbortController();
  const abortLosers = () => losers.abort();
  options.signal.addEventListener("abort", abortLosers, { once: true });
  const claim = async (connection: MailboxConnection, via: ClaimedVia): Promise<AnsweredClaim> => {
    const drop = () => connection.destroy();
    losers.signal.addEventListener("abort", drop, { once: true });
    connection.send({ type: "claim", nameplate: code.nameplate });
    connection.send({ type: "message", body: shareMessage });
    const senderShare = await awaitSenderShare(connection, SHARE_MS);
    losers.signal.removeEventListener("abort", drop);
    return { connection, senderShare, via };
  };
  const paths: Promise<AnsweredClaim>[] = [];
  if (options.mailbox !== undefined)
    paths.push(dialRelayMailbox(options.mailbox, losers.signal).then((at) => claim(at, "relay")));
  if (options.lan !== false)
    paths.push(searchLan(code, options, losers.signal).then((at) => claim(at, "lan")));
  if (paths.length === 0) throw new TeleportError(ErrorCode.USAGE, "receive: no way to look for the sender");
  let answered: AnsweredClaim;
  try {
    answered = await firstAnswer(paths);
  } finally {
    losers.abort();
    options.signal.removeEventListener("abort", abortLosers);
  }
  try {
    const payload = await receiveLink(answered.connection, start, answered.senderShare);
    return { payload, via: answered.via };
  } finally {
    answered.connection.close();
  }
}

/** The sender on the LAN, dialed; CODE_NOT_FOUND when nobody answers in time. */
async function searchLan(
  code: JoinCode,
  options: JoinClaimOptions,
  signal: AbortSignal,
): Promise<MailboxConnection> {
  const search = AbortSignal.any([signal, AbortSignal.timeout(options.lanSearchMs ?? LAN_SEARCH_MS)]);
  let found: { host: string; port: number };
  try {
    found = await findOffer(code.nameplate, search);
  } catch (err) {
    if (signal.aborted) throw err;
    throw new TeleportError(
      ErrorCode.CODE_NOT_FOUND,
      `no sender on this LAN answered for code number ${code.nameplate}`,
      {
        cause: err,
      },
    );
  }
  return dialSenderMailbox(found, signal);
}

/**
 * The first path to bring the sender's share; if none does, the most telling failure: a
 * mailbox's word (used, expired, wrong) before a search that found nothing.
 */
async function firstAnswer(paths: Promise<AnsweredClaim>[]): Promise<AnsweredClaim> {
  try {
    return await Promise.any(paths);
  } catch (err) {
    const errors = err instanceof AggregateError ? (err.errors as unknown[]) : [err];
    const ranked = errors
      .filter((candidate): candidate is TeleportError => candidate instanceof TeleportError)
      .sort((a, b) => rank(a) - rank(b));
    throw ranked[0] ?? errors[0];
  }
}

function rank(err: TeleportError): number {
  const order: string[] = [
    ErrorCode.CODE_WRONG,
    ErrorCode.CODE_USED,
    ErrorCode.CODE_EXPIRED,
    ErrorCode.CANCELLED,
  ];
  const index = order.indexOf(err.code);
  return index === -1 ? order.length + (err.code === ErrorCode.CODE_NOT_FOUND ? 1 : 0) : index;
}
