/**
 * The sender's side of a join code (`teleport send`): takes a nameplate at the relay's mailbox
 * when there is one (else picks one for the LAN), runs a mailbox of its own on a port of its own
 * for the LAN and advertises it by mDNS, and hands the link to the first receiver whose code
 * checks out. The first claim, on either path, is the only one: later claims are refused as
 * used, and a claim whose exchange fails (a wrong code) closes the offer for good.
 */
import { randomInt } from "node:crypto";
import { createServer, type Server } from "node:net";
import { ErrorCode, TeleportError } from "../errors.js";
import { formatJoinCode, type JoinCode, newJoinCode } from "./join-code.js";
import { refusalError, sendLink } from "./join-exchange.js";
import { advertiseOffer, type LanAdvertisement } from "./lan-discovery.js";
import { refuse } from "./mailbox.js";
import { MailboxConnection } from "./mailbox-connection.js";
import { dialRelayMailbox, type MailboxAddress } from "./mailbox-dial.js";

/** Nameplates a sender picks for itself when no relay allocates one: short, and rarely the same on one LAN. */
const LAN_NAMEPLATES = 999;
/** How long a receiver on the LAN has to say which nameplate it claims. */
const CLAIM_MS = 10_000;
/** How long the relay's mailbox has to answer ALLOCATE. */
const ALLOCATE_MS = 10_000;

export interface JoinOfferOptions {
  /** What the receiver gets once its code checks out (offer-payload.ts: the link, and a name). */
  payload: string;
  /** The relay whose mailbox allocates the nameplate; none: the LAN only. */
  mailbox?: MailboxAddress | undefined;
  /** Also offer on the LAN: a mailbox of our own, advertised by mDNS (default true). */
  lan?: boolean;
  expireMs: number;
  signal: AbortSignal;
  /** Told the code once the offer is open. */
  onCode(code: string): void;
  onNotice?(message: string): void;
}

type Phase = { kind: "waiting" } | { kind: "exchanging"; remote: string } | { kind: "ended" };

/** One code's offer: which claim took it, and how that ended. */
class JoinOffer {
  readonly code: JoinCode;
  readonly #payload: string;
  #phase: Phase = { kind: "waiting" };
  readonly result: Promise<void>;
  #settle: (err?: TeleportError) => void = () => {};

  constructor(code: JoinCode, payload: string) {
    this.code = code;
    this.#payload = payload;
    this.result = new Promise((resolve, reject) => {
      this.#settle = (err) => (err === undefined ? resolve() : reject(err));
    });
    // Awaited once the offer is open; an end before that must not count as unhandled.
    this.result.catch(() => {});
  }

  /** A receiver's claim: the exchange runs if nobody claimed before; else it is refused as used. */
  take(connection: MailboxConnection): void {
    if (this.#phase.kind !== "waiting") {
      refuse(connection, "used");
      return;
    }
    this.#phase = { kind: "exchanging", remote: connection.remote };
    sendLink(connection, this.code, this.#payload).then(
      () => {
        this.#phase = { kind: "ended" };
        connection.close();
        this.#settle();
      },
      (err: unknown) => {
        this.#phase = { kind: "ended" };
        connection.destroy();
        this.#settle(burnt(err));
      },
    );
  }

  /** Ends the offer from outside (expiry, a signal, a mailbox lost). */
  end(err: TeleportError): void {
    if (this.#phase.kind === "ended") return;
    this.#phase = { kind: "ended" };
    this.#settle(err);
  }
}

/** Any failure once a receiver has claimed counts as its one guess: the offer is closed. */
function burnt(err: unknown): TeleportError {
  if (err instanceof TeleportError && err.code === ErrorCode.CODE_WRONG) return err;
  const why = err instanceof Error ? err.message : String(err);
  return new TeleportError(
    ErrorCode.CODE_WRONG,
    `the exchange with a receiver failed (${why}): the offer is closed`,
    { cause: err },
  );
}

/**
 * Opens the offer, tells `onCode` the code, and resolves once one receiver holds the link;
 * rejects with CODE_WRONG (a receiver's code did not check out), CODE_EXPIRED or CANCELLED.
 */
export async function offerJoinCode(options: JoinOfferOptions): Promise<void> {
  const closers: Array<() => unknown> = [];
  try {
    const relay =
      options.mailbox === undefined ? undefined : await allocate(options.mailbox, options.expireMs);
    if (relay !== undefined) closers.push(() => relay.connection.destroy());
    const nameplate = relay?.nameplate ?? 1 + randomInt(LAN_NAMEPLATES);
    const offer = new JoinOffer(newJoinCode(nameplate), options.payload);
    if (options.lan !== false) {
      const lan = await offerOnLan(offer, options.onNotice);
      if (lan !== undefined) closers.push(() => lan.close());
    }
    if (relay !== undefined) awaitRelayClaim(offer, relay.connection, options.expireMs);
    const expiry = setTimeout(
      () => offer.end(new TeleportError(ErrorCode.CODE_EXPIRED, "nobody used the code in time")),
      options.expireMs,
    );
    closers.push(() => clearTimeout(expiry));
    const cancel = () => offer.end(new TeleportError(ErrorCode.CANCELLED, "send interrupted"));
    options.signal.addEventListener("abort", cancel, { once: true });
    closers.push(() => options.signal.removeEventListener("abort", cancel));
    options.onCode(formatJoinCode(offer.code));
    await offer.result;
  } finally {
    for (const close of closers.reverse()) await close();
  }
}

/** ALLOCATE at the relay's mailbox: the nameplate it gives, on the connection held for the claim. */
async function allocate(
  address: MailboxAddress,
  expireMs: number,
): Promise<{ nameplate: number; connection: MailboxConnection }> {
  const connection = await dialRelayMailbox(address);
  connection.send({ type: "allocate", expireSeconds: Math.ceil(expireMs / 1000) });
  const frame = await connection.next(ALLOCATE_MS).catch((err: unknown) => {
    connection.destroy();
    throw err;
  });
  if (frame.type === "allocated") return { nameplate: frame.nameplate, connection };
  connection.destroy();
  if (frame.type === "refused") throw refusalError(frame.refusal);
  throw new TeleportError(ErrorCode.PROTOCOL, `the relay's mailbox answered ALLOCATE with ${frame.type}`);
}

/** The relay says CLAIMED when a receiver claims there; the mailbox closing first ends the offer. */
function awaitRelayClaim(offer: JoinOffer, connection: MailboxConnection, expireMs: number): void {
  connection.next(expireMs).then(
    (frame) => {
      if (frame.type === "claimed") return offer.take(connection);
      connection.destroy();
      offer.end(frame.type === "refused" ? refusalError(frame.refusal) : lostMailbox());
    },
    () => offer.end(lostMailbox()),
  );
}

function lostMailbox(): TeleportError {
  return new TeleportError(ErrorCode.CONNECTION, "the relay's mailbox closed the offer");
}

/**
 * The LAN's way in: a mailbox of our own (each connection must CLAIM our nameplate) advertised
 * by mDNS. A LAN that cannot have it (no multicast) is a notice: the relay may still serve.
 */
async function offerOnLan(
  offer: JoinOffer,
  onNotice: ((message: string) => void) | undefined,
): Promise<{ close(): Promise<void> } | undefined> {
  const server = createServer((socket) =>
    claimOnLan(offer, MailboxConnection.overSocket(socket, { relayHello: false })),
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "0.0.0.0", () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  let advertisement: LanAdvertisement | undefined;
  try {
    advertisement = await advertiseOffer(offer.code.nameplate, port);
  } catch (err) {
    onNotice?.(`the LAN cannot find this offer (mDNS: ${(err as Error).message}); a relay still can`);
  }
  return {
    close: async () => {
      await advertisement?.close();
      await closeServer(server);
    },
  };
}

function claimOnLan(offer: JoinOffer, connection: MailboxConnection): void {
  connection.next(CLAIM_MS).then(
    (frame) => {
      if (frame.type !== "claim") return refuse(connection, "protocol");
      if (frame.nameplate !== offer.code.nameplate) return refuse(connection, "unknown");
      offer.take(connection);
    },
    () => connection.destroy(),
  );
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
