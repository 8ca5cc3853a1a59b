/**
 * The mailbox: where a sender and a receiver who share only a join code meet. A sender takes a
 * nameplate (ALLOCATE); one receiver claims it (CLAIM), once: a second claim is refused as used,
 * even after the first ended, until the offer would have expired. The mailbox then forwards a
 * few bounded messages each way and closes both. It never sees the code's words, and what it
 * forwards is SPAKE2 shares and sealed bytes (threat model: README, "Join codes").
 * `teleport relay` mounts one (relay-mailbox.ts).
 */
import { randomInt } from "node:crypto";
import { MAX_NAMEPLATE } from "./join-code.js";
import type { MailboxConnection } from "./mailbox-connection.js";
import type { MailboxFrame, Refusal } from "./mailbox-protocol.js";

/** Messages each side may send through an offer: the exchange needs 4 (join-exchange.ts). */
export const MAX_MESSAGES_EACH_WAY = 8;
/** Offers waiting or under way at once; past it, ALLOCATE is refused as busy. */
export const DEFAULT_MAX_OFFERS = 10_000;
/** The longest a nameplate is held, whatever a sender asks. */
export const DEFAULT_MAX_EXPIRE_SECONDS = 24 * 3600;
/**
 * How long an ended offer's nameplate is remembered: a late receiver hears "used" or "expired",
 * and no new offer takes the number while someone may still type the old code.
 */
const TOMBSTONE_MS = 10 * 60_000;
/** How long a new connection has to say what it wants, and a claimed offer to finish. */
const FIRST_FRAME_MS = 10_000;
const EXCHANGE_MS = 60_000;

export interface MailboxOptions {
  maxOffers?: number;
  maxExpireSeconds?: number;
}

type Offer =
  | { phase: "waiting"; sender: MailboxConnection; expiresAt: number; timer: NodeJS.Timeout }
  | { phase: "claimed"; expiresAt: number; timer: NodeJS.Timeout };

export class Mailbox {
  readonly #offers = new Map<number, Offer>();
  /** Nameplates of ended offers, why they ended, and until when that is said. */
  readonly #ended = new Map<number, { refusal: "used" | "expired"; until: number }>();
  readonly #maxOffers: number;
  readonly #maxExpireSeconds: number;
  #closed = false;

  constructor(options: MailboxOptions = {}) {
    this.#maxOffers = options.maxOffers ?? DEFAULT_MAX_OFFERS;
    this.#maxExpireSeconds = options.maxExpireSeconds ?? DEFAULT_MAX_EXPIRE_SECONDS;
  }

  /** Offers held now (waiting or claimed). */
  get size(): number {
    return this.#offers.size;
  }

  /** Serves one connection: its first frame says whether it is a sender or a receiver. */
  accept(connection: MailboxConnection): void {
    connection
      .next(FIRST_FRAME_MS)
      .then((frame) => this.#dispatch(connection, frame))
      .catch(() => connection.destroy());
  }

  close(): void {
    this.#closed = true;
    for (const offer of this.#offers.values()) {
      clearTimeout(offer.timer);
      if (offer.phase === "waiting") offer.sender.destroy();
    }
    this.#offers.clear();
  }

  #dispatch(connection: MailboxConnection, frame: MailboxFrame): void {
    if (frame.type === "allocate") this.#allocate(connection, frame.expireSeconds);
    else if (frame.type === "claim") this.#claim(connection, frame.nameplate);
    else refuse(connection, "protocol");
  }

  #allocate(sender: MailboxConnection, askedSeconds: number): void {
    this.#forgetExpired();
    if (this.#closed || this.#offers.size >= this.#maxOffers) {
      refuse(sender, "busy");
      return;
    }
    const expireSeconds = Math.max(1, Math.min(askedSeconds, this.#maxExpireSeconds));
    const nameplate = this.#freeNameplate();
    const expiresAt = Date.now() + expireSeconds * 1000;
    const timer = setTimeout(() => this.#expire(nameplate), expireSeconds * 1000);
    timer.unref();
    this.#offers.set(nameplate, { phase: "waiting", sender, expiresAt, timer });
    sender.send({ type: "allocated", nameplate, expireSeconds });
    // A sender that leaves before anyone claims ends its offer: its code is then expired.
    void sender.closed.then(() => {
      const offer = this.#offers.get(nameplate);
      if (offer?.phase === "waiting" && offer.sender === sender) this.#endOffer(nameplate, "expired");
    });
  }

  #claim(receiver: MailboxConnection, nameplate: number): void {
    const offer = this.#offers.get(nameplate);
    if (offer === undefined || offer.phase !== "waiting") {
      const refusal = offer !== undefined ? "used" : (this.#ended.get(nameplate)?.refusal ?? "unknown");
      refuse(receiver, refusal);
      return;
    }
    this.#offers.set(nameplate, { phase: "claimed", expiresAt: offer.expiresAt, timer: offer.timer });
    offer.sender.send({ type: "claimed" });
    void forwardBetween(offer.sender, receiver).finally(() => this.#endOffer(nameplate, "used"));
  }

  #expire(nameplate: number): void {
    const offer = this.#offers.get(nameplate);
    if (offer === undefined) return;
    this.#endOffer(nameplate, offer.phase === "waiting" ? "expired" : "used");
    if (offer.phase === "waiting") refuse(offer.sender, "expired");
  }

  /** Forgets the offer and remembers its nameplate for a while (bounded: the oldest go first). */
  #endOffer(nameplate: number, refusal: "used" | "expired"): void {
    const offer = this.#offers.get(nameplate);
    if (offer === undefined) return;
    clearTimeout(offer.timer);
    this.#offers.delete(nameplate);
    this.#ended.delete(nameplate);
    this.#ended.set(nameplate, { refusal, until: Date.now() + TOMBSTONE_MS });
    for (const oldest of this.#ended.keys()) {
      if (this.#ended.size <= this.#maxOffers) break;
      this.#ended.delete(oldest);
    }
  }

  /** A random free nameplate, from a range that grows with the offers held so one is quick to find. */
  #freeNameplate(): number {
    const held = this.#offers.size + this.#ended.size;
    const range = Math.min(MAX_NAMEPLATE, Math.max(99, held * 10));
    for (;;) {
      const candidate = 1 + randomInt(range);
      if (!this.#offers.has(candidate) && !this.#ended.has(candidate)) return candidate;
    }
  }

  #forgetExpired(): void {
    const now = Date.now();
    for (const [nameplate, { until }] of this.#ended) if (until <= now) this.#ended.delete(nameplate);
  }
}

export function refuse(connection: MailboxConnection, refusal: Refusal): void {
  connection.send({ type: "refused", refusal });
  connection.close();
}

/** Forwards MESSAGE frames both ways, each way bounded, until either side ends; then ends both. */
async function forwardBetween(sender: MailboxConnection, receiver: MailboxConnection): Promise<void> {
  const pump = async (from: MailboxConnection, to: MailboxConnection) => {
    for (let sent = 0; sent < MAX_MESSAGES_EACH_WAY; sent += 1) {
      const frame = await from.next(EXCHANGE_MS);
      if (frame.type !== "message") throw new Error("not a message");
      to.send(frame);
    }
  };
  // Either way ending ends both; the other way's pending read then fails too, and is caught
  // with it, not left to reject unhandled once the race is over.
  const ways = [pump(sender, receiver), pump(receiver, sender)].map((way) => way.catch(() => {}));
  await Promise.race(ways);
  sender.close();
  receiver.close();
}
