/**
 * A host's standing with one relay (`host --relay`): a control connection registered under the
 * host's identity (it signs the relay's nonce), kept alive by PINGs, and made again with backoff
 * whenever it drops, so a relay that restarts takes the host back without the host restarting.
 * For each client the relay announces (INCOMING) the host dials an accept leg and, once the
 * relay has spliced it (SPLICED), hands the raw socket to its TLS server.
 */
import type { Socket } from "node:net";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { RELAY_STEP_TIMEOUT_MS, RelayChannel } from "../relay/relay-channel.js";
import {
  formatRelayAddress,
  type RelayAddress,
  type RelayMessage,
  RelayType,
  signRegistration,
} from "../relay/relay-protocol.js";
import type { HostIdentity } from "./identity.js";

/** A PING every this long: well within the relay's idle timeout, and a NAT's memory of the connection. */
const PING_INTERVAL_MS = 15_000;
/** Silence after which the control connection is taken for dead and made again. */
const SILENCE_MS = 2 * PING_INTERVAL_MS + 5000;
/** Registering again waits this long after a failure, doubling up to MAX_BACKOFF_MS. */
const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 5000;

/** A spliced socket and what the relay says of the client behind it (for logs and per-address limits). */
export interface RelayedSocket {
  socket: Socket;
  clientAddress: string;
  clientPort: number;
}

export interface RegistrationEvents {
  onSocket(accepted: RelayedSocket): void;
  /** Told of a lost or refused registration, and of one regained. */
  onNotice?: ((message: string) => void) | undefined;
}

type Incoming = Extract<RelayMessage, { type: typeof RelayType.INCOMING }>;

export class RelayRegistration {
  readonly relay: RelayAddress;
  readonly #identity: Pick<HostIdentity, "keyPem" | "certPem">;
  readonly #events: RegistrationEvents;
  readonly #stop = new AbortController();
  readonly #where: string;
  #channel: RelayChannel | undefined;
  #firstAttempt: Promise<void>;
  #done: Promise<void> | undefined;

  constructor(
    relay: RelayAddress,
    identity: Pick<HostIdentity, "keyPem" | "certPem">,
    events: RegistrationEvents,
  ) {
    this.relay = relay;
    this.#identity = identity;
    this.#events = events;
    this.#where = formatRelayAddress(relay);
    let firstSettled: () => void = () => {};
    this.#firstAttempt = new Promise((resolve) => {
      firstSettled = resolve;
    });
    this.#done = this.#run(firstSettled);
  }

  /** Resolves once the first registration has succeeded or failed (it is retried either way). */
  get firstAttempt(): Promise<void> {
    return this.#firstAttempt;
  }

  /** Stops registering and closes the control connection (accepted streams are their owners'). */
  async close(): Promise<void> {
    this.#stop.abort();
    this.#channel?.close();
    await this.#done;
  }

  async #run(firstSettled: () => void): Promise<void> {
    let backoffMs = FIRST_BACKOFF_MS;
    let lost = false;
    while (!this.#stop.signal.aborted) {
      try {
        const channel = await this.#register();
        if (lost) this.#events.onNotice?.(`registered with relay ${this.#where} again`);
        firstSettled();
        backoffMs = FIRST_BACKOFF_MS;
        await this.#serve(channel);
      } catch (err) {
        if (this.#stop.signal.aborted) break;
        firstSettled();
        if (!lost) this.#events.onNotice?.(`${toTeleportError(err).detail}; registering with it again`);
        lost = true;
      }
      await sleep(backoffMs * (0.75 + Math.random() / 2), this.#stop.signal);
      backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
    }
    firstSettled();
  }

  async #register(): Promise<RelayChannel> {
    const signal = this.#stop.signal;
    const channel = await RelayChannel.connect(this.relay, { signal });
    this.#channel = channel;
    channel.send({ type: RelayType.REGISTER, ...signRegistration(this.#identity, channel.nonce) });
    const answer = await channel.next({ signal });
    if (answer.type !== RelayType.REGISTERED) {
      channel.close();
      throw new TeleportError(ErrorCode.PROTOCOL, `relay ${this.#where} answered REGISTER out of turn`);
    }
    return channel;
  }

  /** Answers the relay until the control connection ends (then throws, to register again). */
  async #serve(channel: RelayChannel): Promise<void> {
    const signal = this.#stop.signal;
    const pings = setInterval(() => channel.send({ type: RelayType.PING }), PING_INTERVAL_MS);
    try {
      for (;;) {
        const message = await channel.next({ signal, timeoutMs: SILENCE_MS });
        if (message.type === RelayType.INCOMING) this.#accept(message);
        else if (message.type !== RelayType.PONG && message.type !== RelayType.PING)
          throw new TeleportError(
            ErrorCode.PROTOCOL,
            `relay ${this.#where} sent 0x${message.type.toString(16)} on the control connection`,
          );
      }
    } finally {
      clearInterval(pings);
      channel.close();
    }
  }

  /** Dials the accept leg for one INCOMING; a failure costs that client only. */
  #accept(incoming: Incoming): void {
    const signal = this.#stop.signal;
    const leg = (async () => {
      const channel = await RelayChannel.connect(this.relay, { signal, timeoutMs: RELAY_STEP_TIMEOUT_MS });
      channel.send({ type: RelayType.ACCEPT, token: incoming.token });
      const answer = await channel.next({ signal });
      if (answer.type !== RelayType.SPLICED) {
        channel.close();
        throw new TeleportError(ErrorCode.PROTOCOL, `relay ${this.#where} answered ACCEPT out of turn`);
      }
      const { socket, remainder } = channel.release();
      if (remainder.length > 0) socket.unshift(remainder);
      this.#events.onSocket({
        socket,
        clientAddress: incoming.clientAddress,
        clientPort: incoming.clientPort,
      });
    })();
    leg.catch(() => {});
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
